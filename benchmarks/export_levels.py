"""What a categorical column's levels add to the final stage's export: the price's `level_export_s`.

For each level count, writes 60,000 rows (one numeric column, one categorical with that many levels, a binary
target), runs the engine's CLI on it on one core (`taskset -c 0`, 2 trials of baseline and linear, a generous
budget) and reads the final stage's own timings from manifest.json: the two exports (`export_s`: the model on all
rows; `holdout_onnx_s`: the scored model's export and its onnxruntime scoring), beside the price the run carried
(`final.estimated_s`) and the levels the model frame held. Prints one row per level count and the seconds per
level per export of the largest count (the two exports over twice its levels).

    python benchmarks/export_levels.py --levels 1000 10000 50000 --out /tmp/export-levels
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def frame(levels: int, n: int = 60_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    codes = np.concatenate([np.arange(levels), rng.integers(0, min(levels, 10_000), n - levels)])
    rng.shuffle(codes)
    x = rng.normal(size=n)
    return pd.DataFrame({"x": x, "code": pd.Series(codes).map("P{:05d}".format),
                         "y": np.where(x + rng.normal(size=n) > 0, "yes", "no")})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", type=int, nargs="+", default=[1000, 10000, 50000])
    ap.add_argument("--out", type=Path, default=Path("/tmp/export-levels"))
    ap.add_argument("--time", type=int, default=60)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for levels in a.levels:
        data, run = a.out / f"levels{levels}.csv", a.out / f"run{levels}"
        frame(levels).to_csv(data, index=False)
        subprocess.run(["taskset", "-c", "0", sys.executable, "-m", "automl", f"data.path={data}", "task.target=y",
                        f"budget.time_s={a.time}", "budget.n_trials=2", "estimators.include=[baseline,linear]",
                        f"hydra.run.dir={run}"], check=True, capture_output=True)
        m = json.loads((run / "manifest.json").read_text())
        t = m["final"]["timings"]
        exports = t["export_s"] + t["holdout_onnx_s"]
        rows.append({"levels": levels, "family": m["final"]["family"], "exports_s": round(exports, 3),
                     "export_s": round(t["export_s"], 3), "holdout_onnx_s": round(t["holdout_onnx_s"], 3),
                     "estimated_s": m["final"]["estimated_s"], "final_s": m["timings"]["final_s"]})
        print(json.dumps(rows[-1]), flush=True)
    top = rows[-1]
    print(f"seconds per level per export at {top['levels']} levels: {top['exports_s'] / (2 * top['levels']):.2e}")


if __name__ == "__main__":
    main()
