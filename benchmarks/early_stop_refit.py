"""What an early-stopped booster's refit costs, relative to the fold fit that chose its rounds.

On one inner split a boosting trial fits with early stopping: every round also scores the validation
rows, and the fit runs `patience` rounds past the best one. The final stage refits with the kept rounds
and no validation set. This script fits both ways on public datasets and prints, per family, the refit's
seconds per (row x round) over the early-stopped fit's: the `early_refit_ratio` of each EstimatorSpec
(automl/estimators/*.py) comes from its output.

    python benchmarks/early_stop_refit.py [--datasets german_health,doctor_contacts,aids] [--repeats 3]

Both fits run in this one process, one thread, back to back, so machine load moves them together.
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
from sklearn.model_selection import train_test_split

from automl.estimators import REGISTRY
from automl.search.objective import patience

HERE = os.path.dirname(os.path.abspath(__file__))
SUITE = os.path.join(HERE, "..", "..", "shared", "datasets")
CONFIGS = {  # rounds and learning rates from the search spaces' ranges (search_spaces/*.yaml)
    "lightgbm": [{"n_estimators": 600, "learning_rate": 0.05, "num_leaves": 31},
                 {"n_estimators": 300, "learning_rate": 0.1, "num_leaves": 63}],
    "xgboost": [{"n_estimators": 600, "learning_rate": 0.05, "max_depth": 6},
                {"n_estimators": 300, "learning_rate": 0.1, "max_depth": 4}],
    "catboost": [{"iterations": 600, "learning_rate": 0.05, "depth": 6},
                 {"iterations": 400, "learning_rate": 0.1, "depth": 8}],
}


def load(name: str, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    meta = next(d for d in yaml.safe_load(Path(SUITE, "datasets.yaml").read_text())["datasets"] if d["name"] == name)
    df = pd.read_csv(os.path.join(SUITE, meta["file"]), low_memory=False)
    y = df.pop(meta["target"])
    X = pd.get_dummies(df.select_dtypes(exclude="object").join(df.select_dtypes("object").astype("category")),
                       dtype=np.float32).to_numpy(np.float32)
    task = meta["task"]
    yy = y.to_numpy() if task == "regression" else pd.factorize(y)[0]
    X, _, yy, _ = train_test_split(X, yy, test_size=0.2, random_state=seed)
    return X, yy, task


def measure(family: str, params: dict, X: np.ndarray, y: np.ndarray, task: str, seed: int) -> tuple[float, int, int]:
    spec = REGISTRY.get(family)
    assert spec.fit_early is not None
    tr, va = train_test_split(np.arange(len(y)), test_size=0.2, random_state=seed)
    est = spec.build(params, task=task, seed=seed)
    t = time.perf_counter()
    best = spec.fit_early(est, X[tr], y[tr], X[va], y[va], patience(int(params[spec.rounds_param])))
    early_s = time.perf_counter() - t
    trained = min(int(params[spec.rounds_param]), best + patience(int(params[spec.rounds_param])))
    refit = spec.build({**params, spec.rounds_param: best}, task=task, seed=seed)
    t = time.perf_counter()
    refit.fit(X, y)
    refit_s = time.perf_counter() - t
    ratio = (refit_s / (len(y) * best)) / (early_s / (len(tr) * trained))
    return ratio, best, trained


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="german_health,doctor_contacts,aids")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    ratios: dict[str, list[float]] = {f: [] for f in CONFIGS}
    for name in a.datasets.split(","):
        for fam, configs in CONFIGS.items():
            for params in configs:
                for r in range(a.repeats):
                    X, y, task = load(name, r)
                    ratio, best, trained = measure(fam, params, X, y, task, r)
                    ratios[fam].append(ratio)
                    print(f"{name:16s} {fam:9s} {params} best={best} trained={trained} ratio={ratio:.3f}", flush=True)
    print(f"load average {os.getloadavg()}")
    for fam, rs in ratios.items():
        print(f"{fam}: median {statistics.median(rs):.3f}  max {max(rs):.3f}  n={len(rs)}")


if __name__ == "__main__":
    main()
