"""The markdown table of benchmarks/RESULTS.md's imbalance section, from the rows benchmarks/imbalance.py
appended to benchmarks/results/imbalance.jsonl: one metric at one engine commit, "off" against "on" per
seed, then the paired difference.

    python benchmarks/imbalance_table.py --metric average_precision --sha acbd99e
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHORT = {"hist_gradient_boosting": "hgb", "extra_trees": "et", "random_forest": "rf"}


def shipped(r: dict) -> str:
    parts = []
    for m in r.get("members") or []:
        fam, _, w = m.rpartition(" x")
        name, _, tag = fam.partition("[")
        tag = tag.rstrip("]")
        tag = ("[bagging]" if "balanced_bagging" in tag else "[weights]" if "class_weight" in tag
               else f"[{tag.split('=')[1].split()[0]}]" if tag else "")
        parts.append(f"{SHORT.get(name, name)}{tag} x{w}")
    return " + ".join(parts) + (" (fallback)" if r.get("fallback") else "")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default=str(HERE / "results" / "imbalance.jsonl"))
    ap.add_argument("--metric", default="average_precision")
    ap.add_argument("--sha", required=True, help="engine commit (prefix) whose rows to show")
    a = ap.parse_args()
    rows = [json.loads(x) for x in Path(a.rows).read_text().splitlines() if x.strip()]
    rows = [r for r in rows if r["metric"] == a.metric and str(r.get("git_sha", "")).startswith(a.sha)]
    by = {(r["seed"], r["imbalance"]): r for r in rows}  # the latest row wins
    seeds = sorted({s for s, _ in by})
    f = lambda v: "" if v is None else f"{v:.4f}"  # noqa: E731
    print("| seed | off: test | best single CV | engine holdout | trials | shipped "
          "| on: test | best single CV | engine holdout | trials (imbalance) | shipped |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    diffs, paired = [], []
    for s in seeds:
        cells = [str(s)]
        for mode in ("off", "on"):
            r = by.get((s, mode), {})
            trials = f"{r.get('trials', '')} ({r.get('trials_imbalance', 0)})" if mode == "on" else str(r.get("trials", ""))
            cells += [f(r.get("score")), f(r.get("best_single_cv")), f(r.get("holdout")), trials, shipped(r)]
        print("| " + " | ".join(cells) + " |")
        on, off = by.get((s, "on"), {}).get("score"), by.get((s, "off"), {}).get("score")
        if on is not None and off is not None:
            diffs.append(on - off)
            paired.append((off, on))
    if not paired:
        return
    off_m, on_m = np.mean(paired, axis=0)
    print(f"| **mean** | **{off_m:.4f}** | | | | | **{on_m:.4f}** | | | | |")
    d = np.array(diffs)
    print()
    print(f"on - off (test): mean {d.mean():+.4f}, sd {d.std(ddof=1):.4f}, se {d.std(ddof=1) / np.sqrt(len(d)):.4f}; "
          f"on better on {(d > 0).sum()}, worse on {(d < 0).sum()}, equal on {(d == 0).sum()} of {len(d)} seeds; "
          f"median {np.median(d):+.4f}")
    fb = {m: sum(bool(by.get((s, m), {}).get("fallback")) for s in seeds) for m in ("off", "on")}
    print(f"final-stage fallbacks: off {fb['off']}, on {fb['on']} of {len(seeds)} runs each; "
          f"failed runs: {sum(r.get('rc', 0) != 0 for r in by.values())}")


if __name__ == "__main__":
    main()
