"""The engine against each anchor, per (dataset, seed) run and per dataset (mean over seeds), with a paired
two-sided sign test, from the shared harness's JSON lines.

    python benchmarks/headtohead.py --engine benchmarks/results/issue16-HEAD/automl.jsonl \
        --anchors benchmarks/results/baseline-2c339ff --seeds 2,3,4

`--anchors` is a folder of SYSTEM.jsonl files (flaml, autogluon, hgb, and optionally an earlier automl run
to compare against, named by `--baseline`). Prints markdown: per-seed wins, all runs, sign test p, wins by
dataset mean, and the engine's wall time over budget.
"""
from __future__ import annotations

import argparse
import json
from math import comb
from pathlib import Path

LOWER = {"log_loss", "rmse", "mae", "mse"}


def load(path: Path, seeds: list[int]) -> dict[tuple[str, int], dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["dataset"], r["seed"]): r for r in rows if r["seed"] in seeds and r.get("score") is not None}


def sign_p(wins: int, losses: int) -> float:
    """Two-sided exact sign test (ties dropped)."""
    n, k = wins + losses, min(wins, losses)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n)


def better(a: dict, b: dict) -> int:
    """+1 when run a scored better than run b, -1 worse, 0 tie."""
    if a["score"] == b["score"]:
        return 0
    lower = a["metric"] in LOWER
    return 1 if (a["score"] < b["score"]) == lower else -1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--engine", required=True)
    ap.add_argument("--anchors", required=True)
    ap.add_argument("--seeds", default="2,3,4")
    ap.add_argument("--systems", default="flaml,autogluon,hgb")
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    eng = load(Path(a.engine), seeds)
    print("| engine vs | " + " | ".join(f"seed {s}" for s in seeds)
          + " | all runs | sign test p | by dataset mean |")
    print("|---|" + "---|" * (len(seeds) + 3))
    for name in a.systems.split(","):
        other = load(Path(a.anchors) / f"{name}.jsonl", seeds)
        keys = sorted(set(eng) & set(other))
        cells, tw, tl = [], 0, 0
        for s in seeds:
            res = [better(eng[k], other[k]) for k in keys if k[1] == s]
            w, l_ = res.count(1), res.count(-1)
            tw, tl = tw + w, tl + l_
            cells.append(f"{w}-{l_}")
        datasets = sorted({d for d, _ in keys})
        dw = dl = 0
        for d in datasets:
            ks = [k for k in keys if k[0] == d]
            me = sum(eng[k]["score"] for k in ks) / len(ks)
            mo = sum(other[k]["score"] for k in ks) / len(ks)
            if me != mo:
                win = (me < mo) == (eng[ks[0]]["metric"] in LOWER)
                dw, dl = dw + win, dl + (not win)
        print(f"| {name} | " + " | ".join(cells) + f" | {tw}-{tl} | {sign_p(tw, tl):.3f} | {dw}-{dl} |")
    walls = [r["overrun"] for r in eng.values()]
    print(f"\nengine wall/budget over {len(walls)} runs: min {min(walls):.2f}, mean {sum(walls) / len(walls):.2f}, "
          f"max {max(walls):.2f}")


if __name__ == "__main__":
    main()
