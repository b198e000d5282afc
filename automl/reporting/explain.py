"""Numbers the report shows that need the model and holdout rows in memory: permutation feature
importance of the holdout-scored pipeline, and onnxruntime latency of the shipped graph.

Both are measured during the run (the report may be rebuilt later from the run folder, which keeps
no raw rows) and are bounded in time, because their time counts in the run's budget.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from automl.export.contract import feeds_from_frame
from automl.export.onnx import session


def permutation_importance(predict: Callable[[pd.DataFrame], np.ndarray], X: pd.DataFrame, y: np.ndarray,
                           score: Callable[[np.ndarray, np.ndarray], float], greater_is_better: bool, seed: int,
                           max_rows: int = 1000, n_repeats: int = 3, time_limit_s: float = 2.0) -> dict[str, Any]:
    """Drop in the holdout score when one raw column is shuffled (Breiman 2001), per column.

    Raw columns, not encoded features, so the names are the ones a user sends. Stops at the time
    limit and says how many columns and repeats it covered."""
    rng = np.random.default_rng(seed)
    if len(X) > max_rows:
        idx = rng.choice(len(X), max_rows, replace=False)
        X, y = X.iloc[idx].reset_index(drop=True), y[idx]
    t0 = time.perf_counter()
    base = score(y, predict(X))
    sign = 1.0 if greater_is_better else -1.0
    drops: dict[str, list[float]] = {c: [] for c in X.columns}
    deadline = t0 + time_limit_s
    for _ in range(n_repeats):
        for col in X.columns:
            if time.perf_counter() > deadline:
                break
            shuffled = X.copy()
            shuffled[col] = X[col].to_numpy()[rng.permutation(len(X))]
            drops[col].append(sign * (base - score(y, predict(shuffled))))
        if time.perf_counter() > deadline:
            break
    rows: list[dict[str, Any]] = [
        {"column": c, "importance": float(np.mean(d)), "std": float(np.std(d)), "repeats": len(d)}
        for c, d in drops.items() if d
    ]
    rows.sort(key=lambda r: r["importance"], reverse=True)
    return {"baseline_score": float(base), "rows": len(X), "columns_covered": len(rows),
            "columns_total": X.shape[1], "seconds": round(time.perf_counter() - t0, 3), "importances": rows}


def onnx_latency(model_bytes: bytes, X: pd.DataFrame, schema: list[dict[str, str]], n_single: int = 200,
                 time_limit_s: float = 1.0) -> dict[str, float]:
    """Single-row latency (median, p99) and batch throughput of the graph in onnxruntime, in process."""
    sess = session(model_bytes)
    rows = X.iloc[: max(1, min(len(X), 1000))]
    batch = feeds_from_frame(rows, schema)
    singles = [{k: v[i:i + 1] for k, v in batch.items()} for i in range(min(len(rows), n_single))]
    sess.run(None, singles[0])  # warm-up
    times: list[float] = []
    deadline = time.perf_counter() + time_limit_s
    while len(times) < n_single and time.perf_counter() < deadline:
        feed = singles[len(times) % len(singles)]
        t = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    sess.run(None, batch)
    batch_s = time.perf_counter() - t
    ms = np.asarray(times) * 1e3
    return {"single_row_ms_median": round(float(np.median(ms)), 4),
            "single_row_ms_p99": round(float(np.percentile(ms, 99)), 4),
            "single_row_calls": len(times), "batch_rows": len(rows),
            "batch_rows_per_s": round(len(rows) / max(batch_s, 1e-9), 1)}
