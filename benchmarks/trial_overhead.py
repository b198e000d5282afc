"""What a process per trial costs, beside what a cheap trial does in it.

Issue 16 item 6 asks whether long-lived workers would pay. This script measures, in a driver-sized process
(the engine's libraries imported, `--hold-mb` of data held, as a driver holding its frame):
- `supervise` of a function that does nothing: fork, pipe, memory watch, join;
- one linear trial's `cross_validate` in-process on a public dataset (5 folds), split into fit, export
  check (ONNX export, parity, latency probe) and the rest (predict, scoring, pipeline building).

    python benchmarks/trial_overhead.py [--dataset aids] [--repeats 20] [--hold-mb 400]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from automl.data.roles import infer_schema, to_model_frame
from automl.data.split import cv_folds
from automl.evaluation.metrics import get_metric
from automl.search import objective as obj
from automl.search.supervisor import supervise

HERE = os.path.dirname(os.path.abspath(__file__))
SUITE = os.path.join(HERE, "..", "..", "shared", "datasets")


def nothing(conn: object) -> int:
    return 1


def trial_data(name: str) -> obj.SearchData:
    meta = next(d for d in yaml.safe_load(Path(SUITE, "datasets.yaml").read_text())["datasets"] if d["name"] == name)
    df = pd.read_csv(os.path.join(SUITE, meta["file"]), low_memory=False)
    y = pd.factorize(df.pop(meta["target"]))[0] if meta["task"] != "regression" else df.pop(meta["target"]).to_numpy()
    schema = infer_schema(df.assign(**{meta["target"]: y}), meta["target"], [], [])
    n_classes = int(y.max()) + 1 if meta["task"] != "regression" else 0
    return obj.SearchData(X=to_model_frame(df, schema), y=y, folds=cv_folds(y, meta["task"], 5, 0), schema=schema,
                          missing_numeric=[], task=meta["task"], metric=get_metric(meta["metric"]),
                          n_classes=n_classes, seed=0, families=["linear"], n_jobs=1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="aids")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--hold-mb", type=int, default=400)
    a = ap.parse_args()
    import catboost  # noqa: F401  (a driver's imports)

    held = np.ones(a.hold_mb * 2**20 // 8)  # noqa: F841  (pages a forked child shares copy-on-write)
    for memory_mb in (0.0, 6000.0):
        ts = []
        for _ in range(a.repeats):
            t = time.perf_counter()
            supervise(nothing, (), timeout_s=10, memory_mb=memory_mb)
            ts.append(time.perf_counter() - t)
        print(f"supervise(nothing), memory watch {'on' if memory_mb else 'off'}: median {statistics.median(ts):.3f}s")
    data = trial_data(a.dataset)
    cand = obj.candidate_from(obj.default_params(data, "linear"))
    obj.cross_validate(None, data, cand)  # warm
    rows = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        out = obj.cross_validate(None, data, cand)
        total = time.perf_counter() - t
        rows.append((total, out["fit_s"], out["export_s"]))
    total, fit, export = (statistics.median(c) for c in zip(*rows, strict=True))
    print(f"linear trial on {a.dataset} in-process: median {total:.3f}s = fit {fit:.3f}s + export check {export:.3f}s "
          f"+ the rest {total - fit - export:.3f}s")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
