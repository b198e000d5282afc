"""Per-dataset table of one side-by-side sitting (benchmarks/side_by_side.sh): mean score over seeds 2-4 for the
engine, a previous sitting's engine, FLAML, AutoGluon medium and HGB (best in bold), the engine's wall/budget per
seed and mean peak RSS per system; then wall/budget's range, how often the engine's peak was at or below FLAML's,
and the engine's runs against the previous sitting's on the same splits. Where the sitting measured whole trees
(benchmarks/cgroup_peak.py), a second table: each system's tree, the engine's own command apart from its adapter.

    python benchmarks/sitting_table.py benchmarks/results/s34-5cf7d66 benchmarks/results/s33-8805570 [BUDGET_S]
"""
from __future__ import annotations

import json
import statistics as st
import sys
from pathlib import Path
from typing import Any

SEEDS = (2, 3, 4)
LOWER = {"rmse", "log_loss"}  # lower is better
NAMES = {"roc_auc": "AUC", "rmse": "RMSE", "log_loss": "log loss"}


def load(folder: str, system: str) -> dict[tuple[str, int], dict[str, Any]]:
    path = Path(folder) / f"{system}.jsonl"
    if not path.exists():
        return {}
    rows = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return {(r["dataset"], r["seed"]): r for r in rows}


def mean(runs: dict[tuple[str, int], dict[str, Any]], dataset: str, key: str = "score") -> float:
    vals = [runs[(dataset, s)][key] for s in SEEDS if runs.get((dataset, s), {}).get(key) is not None]
    return st.mean(vals) if vals else float("nan")


def main(now: str, before: str, budget: float) -> None:
    eng, fl, ag, hgb = (load(now, s) for s in ("automl", "flaml", "autogluon", "hgb"))
    prev = load(before, "automl")
    print("| dataset (metric) | engine | engine (previous) | FLAML | AutoGluon medium | HGB "
          "| engine wall/budget (2/3/4) | peak MB engine / FLAML / AG (mean) | engine peak (previous) |")
    print("|---|---|---|---|---|---|---|---|---|")
    walls: list[float] = []
    below = pairs = 0
    for d in sorted({k[0] for k in eng}):
        metric = next(r["metric"] for k, r in eng.items() if k[0] == d)
        vals = {"e": mean(eng, d), "f": mean(fl, d), "a": mean(ag, d), "h": mean(hgb, d)}
        best = (min if metric in LOWER else max)(v for v in vals.values() if v == v)
        cell = {k: f"**{v:.5g}**" if v == best else f"{v:.5g}" for k, v in vals.items()}
        w = [eng[(d, s)]["wall_s"] / budget for s in SEEDS if (d, s) in eng]
        walls += w
        for s in SEEDS:
            if (d, s) in eng and (d, s) in fl:
                pairs += 1
                below += eng[(d, s)]["peak_rss_mb"] <= fl[(d, s)]["peak_rss_mb"]
        peaks = " / ".join(f"{mean(r, d, 'peak_rss_mb'):.0f}" for r in (eng, fl, ag))
        print(f"| {d} ({NAMES.get(metric, metric)}) | {cell['e']} | {mean(prev, d):.5g} | {cell['f']} | {cell['a']} "
              f"| {cell['h']} | {'/'.join(f'{x:.2f}' for x in w)} | {peaks} | {mean(prev, d, 'peak_rss_mb'):.0f} |")
    outside = sum(1 for x in walls if x < 0.9 or x > 1.05)
    print(f"\nwall/budget: min {min(walls):.2f} mean {st.mean(walls):.2f} max {max(walls):.2f}; "
          f"outside 0.90-1.05: {outside} of {len(walls)}; engine peak <= FLAML's: {below} of {pairs}")
    better = worse = 0
    for k, r in eng.items():
        if k in prev and r["score"] != prev[k]["score"]:
            if (r["score"] < prev[k]["score"]) == (r["metric"] in LOWER):
                better += 1
            else:
                worse += 1
    print(f"engine vs the previous sitting's runs on the same splits: {better} better, {worse} worse")
    trees(eng, fl)


def tree(r: dict[str, Any], kind: str) -> float | None:
    """The run's whole-tree peak: `anon` (anonymous memory, polled) or `all` (the cgroup's counter, file pages
    included); the engine's own command where it was measured apart from its adapter."""
    key = "tree_anon_peak_mb" if kind == "anon" else "tree_peak_mb"
    v = r.get(f"engine_{key}", r.get(key))
    return None if v is None else float(v)


def trees(eng: dict[tuple[str, int], dict[str, Any]], fl: dict[tuple[str, int], dict[str, Any]]) -> None:
    if not any(tree(r, "anon") is not None for r in eng.values()):
        return
    print("\n| dataset | tree anonymous MB engine / FLAML (mean) | tree incl. file pages MB engine / FLAML (mean) "
          "| largest process MB engine / FLAML (mean) |")
    print("|---|---|---|---|")
    below = {"anon": 0, "all": 0}
    pairs = 0
    for d in sorted({k[0] for k in eng}):
        cells = []
        for kind in ("anon", "all"):
            e = [tree(eng[(d, s)], kind) for s in SEEDS if (d, s) in eng]
            f = [tree(fl[(d, s)], kind) for s in SEEDS if (d, s) in fl]
            cells.append(f"{st.mean(x for x in e if x is not None):.0f} / "
                         f"{st.mean(x for x in f if x is not None):.0f}" if any(e) and any(f) else "-")
        for s in SEEDS:
            if (d, s) in eng and (d, s) in fl:
                pairs += 1
                for kind in below:
                    a, b = tree(eng[(d, s)], kind), tree(fl[(d, s)], kind)
                    below[kind] += a is not None and b is not None and a <= b
        cells.append(f"{mean(eng, d, 'peak_rss_mb'):.0f} / {mean(fl, d, 'peak_rss_mb'):.0f}")
        print(f"| {d} | " + " | ".join(cells) + " |")
    print(f"\nengine tree <= FLAML's: anonymous {below['anon']} of {pairs}, incl. file pages {below['all']} of {pairs}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 60.0)
