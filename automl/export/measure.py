"""What a graph costs where it is deployed, measured the same way every time on the exported bytes.

Single-row latency: onnxruntime with one intra-op and one inter-op thread, sequential execution, WARMUP calls
first, then REPS single-row calls cycling through up to 100 real rows; p50 and p90 in ms. Batch: one call on
1000 rows (the rows repeated if fewer), the median of BATCH_REPS calls, in ms. Size: the serialised graph in MB
(10^6 bytes). The machine it ran on is recorded with the numbers (a latency is a property of a graph *and* a
CPU), so two numbers are only compared when their `machine` agrees.
"""
from __future__ import annotations

import os
import platform
import time
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from automl.cores import usable_cores
from automl.export.contract import feeds_from_frame

WARMUP, REPS, BATCH_ROWS, BATCH_REPS = 20, 200, 1000, 3
METHOD = (f"onnxruntime CPU, intra_op_num_threads=1, inter_op_num_threads=1, sequential; {WARMUP} warm-up "
          f"calls, then {REPS} single-row calls (p50, p90); batch: median of up to {BATCH_REPS} calls on "
          f"{BATCH_ROWS} rows")


@cache
def machine() -> dict[str, Any]:
    """The CPU and software a measurement ran on."""
    import onnxruntime as ort

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {"platform": platform.platform(), "machine": platform.machine(), "cpu": cpu,
            "cores": os.cpu_count() or 0, "usable_cores": usable_cores(), "onnxruntime": ort.__version__}


def one_thread_session(model_bytes: bytes) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def quick_p50(model_bytes: bytes, X: pd.DataFrame, schema: list[dict[str, str]], reps: int = 30) -> float:
    """Single-row p50 in ms over a few calls (one thread, 3 warm-up calls): the search's cheap estimate."""
    sess = one_thread_session(model_bytes)
    feeds = feeds_from_frame(X.iloc[:reps], schema)
    singles = [{k: v[i:i + 1] for k, v in feeds.items()} for i in range(min(len(X), reps))]
    times = []
    for i in range(3 + reps):
        t = time.perf_counter()
        sess.run(None, singles[i % len(singles)])
        times.append(time.perf_counter() - t)
    return round(1e3 * float(np.median(times[3:])), 4)


def measure(model_bytes: bytes, X: pd.DataFrame, schema: list[dict[str, str]], reps: int = REPS,
            time_limit_s: float = 5.0) -> dict[str, Any]:
    """Latency (single row p50/p90, batch of 1000) and size of a graph on rows `X` (raw model inputs).
    Stops early at `time_limit_s` (a slow graph is already known to be slow); `single_row_calls` says how many
    calls the percentiles rest on."""
    if not len(X):
        raise ValueError("measure needs at least one row")
    sess = one_thread_session(model_bytes)
    rows = X.iloc[:100]
    feeds = feeds_from_frame(rows, schema)
    singles = [{k: v[i:i + 1] for k, v in feeds.items()} for i in range(len(rows))]
    for i in range(WARMUP):
        sess.run(None, singles[i % len(singles)])
    times: list[float] = []
    deadline = time.perf_counter() + time_limit_s
    while len(times) < reps and (len(times) < 10 or time.perf_counter() < deadline):
        feed = singles[len(times) % len(singles)]
        t = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t)
    ms = np.asarray(times) * 1e3
    big = X.iloc[np.arange(BATCH_ROWS) % len(X)]
    batch = feeds_from_frame(big, schema)
    batch_times = []
    for _ in range(BATCH_REPS):
        t = time.perf_counter()
        sess.run(None, batch)
        batch_times.append(time.perf_counter() - t)
        if time.perf_counter() > deadline:  # a slow graph: one batch call says enough
            break
    return {"latency_ms_p50": round(float(np.median(ms)), 4), "latency_ms_p90": round(float(np.percentile(ms, 90)), 4),
            "single_row_calls": len(times), "batch_calls": len(batch_times),
            "batch_ms_per_1k": round(1e3 * float(np.median(batch_times)), 3),
            "model_mb": round(len(model_bytes) / 1e6, 4), "method": METHOD, "machine": machine()}
