"""The parity gate and the holdout's onnxruntime score of the shipped graph, in a supervised process of their
own, started once the refit's process has exited.

An onnxruntime session of a deep forest's graph takes about twelve times the graph's bytes (~240 MB for a
19 MB graph); in the refit's process it came on top of the fitted pipeline, its data and the graph's Python
copy, and that process was the run's largest. Here it meets only the graph's bytes and the Python
outputs the refit's process computed on the parity rows (automl/stages/refit.py, Pending).

onnx's checker runs here too, before the session (its parse of the graph is the other large allocation of an
export). An ensemble that fails the gate here cannot name the members that fail it on their own (that needs each
member's graph and fitted pipeline): it reports them as unknown (None), and the final stage refits it once
more with the gate in the refit's process (automl/stages/final.py), which names them.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from automl.errors import ParityError
from automl.export.onnx import check_graph, check_parity
from automl.search import objective as obj
from automl.search.supervisor import COMPLETE, Outcome
from automl.stages.refit import Pending, gate_rows, onnx_score

# the gate's process is given at least MIN_GATE_S + GATE_S_PER_MB x the graph's MB, whatever the refit left of
# the attempt's limit: it may overrun the attempt by as much. Its time grows with the graph (onnx's checker and
# the onnxruntime sessions); a flat floor stopped large forests' gates after their refit had passed, and a
# model several ranks down shipped instead (measured in benchmarks/RESULTS.md, session 49)
MIN_GATE_S = 0.5
GATE_S_PER_MB = 0.09


def gate(conn: Any, data: obj.SearchData, X_hold: pd.DataFrame, y_hold: np.ndarray, model: bytes,
         holdout_graph: bytes | None, pending: Pending, parity_tol: float, parity_rows: int,
         threshold: float | None) -> dict[str, Any]:
    """The holdout scored through onnxruntime (by `holdout_graph`, the model the holdout scored in Python, when
    the shipped `model` was refit on all rows), then the parity gate of `model`: what refit_export adds
    when it gates in its own process."""
    out: dict[str, Any] = {}
    timings: dict[str, float] = {}
    t = time.perf_counter()
    for graph in (model, holdout_graph):  # the refit's process left onnx's checker to this one
        if graph is not None:
            check_graph(graph)
    timings["check_s"] = time.perf_counter() - t
    if holdout_graph is not None and len(y_hold):
        t = time.perf_counter()
        out["holdout_score_onnx"] = onnx_score(holdout_graph, data, X_hold, y_hold, threshold, len(data.y))
        timings["holdout_onnx_s"] = time.perf_counter() - t
    rows = gate_rows(X_hold, data, parity_rows)
    t = time.perf_counter()
    try:
        out["parity"] = check_parity(model, None, rows, data.schema, data.task, parity_tol, data.seed, threshold,
                                     fit_rows=pending.fit_rows, labels=pending.labels, python=pending.python)
    except ParityError as e:  # a single model has no member to drop; an ensemble's are not known here
        return {**out, "parity_error": str(e), "parity_failed_members": [] if pending.members == 1 else None,
                "timings": timings}
    timings["parity_s"] = time.perf_counter() - t
    if holdout_graph is None and len(y_hold):  # the shipped graph's own holdout score, through the contract alone
        out["holdout_score_onnx"] = onnx_score(model, data, X_hold, y_hold, threshold, len(data.y))
    return {**out, "timings": timings}


def gate_floor_s(model: bytes) -> float:
    """The least time the gate's process is given for a graph of `model`'s size (MIN_GATE_S, GATE_S_PER_MB)."""
    return MIN_GATE_S + GATE_S_PER_MB * len(model) / 1e6


def gated(outcome: Outcome, run: Callable[..., Outcome], data: obj.SearchData, X_hold: pd.DataFrame,
          y_hold: np.ndarray, parity_tol: float, parity_rows: int, threshold: float | None, limit_s: float,
          memory_mb: float) -> Outcome:
    """The refit's `outcome` completed by the gate's process, when the refit left the gate to one (its value
    holds `gate`): within what the refit left of the attempt's `limit_s`, and at least gate_floor_s, under the
    same memory limit. A gate that fails ends the attempt as the refit's failure would have."""
    value = outcome.value if outcome.status == COMPLETE and isinstance(outcome.value, dict) else {}
    if "gate" not in value:
        return outcome
    rest = {k: v for k, v in value.items() if k not in ("gate", "holdout_graph")}
    checked = run(gate, (data, X_hold, y_hold, value["model"], value.get("holdout_graph"), value["gate"],
                         parity_tol, parity_rows, threshold),
                  timeout_s=max(gate_floor_s(value["model"]), limit_s - outcome.seconds), memory_mb=memory_mb)
    seconds = outcome.seconds + checked.seconds
    peak = max(outcome.peak_rss_mb, checked.peak_rss_mb)
    if checked.status != COMPLETE:
        return replace(checked, error=f"parity gate: {checked.error}", seconds=seconds, peak_rss_mb=peak)
    got = checked.value
    rest = {**rest, **{k: v for k, v in got.items() if k != "timings"},
            "timings": {**rest.get("timings", {}), **got["timings"], "gate_process_s": checked.seconds}}
    if "parity_error" in got:
        rest.pop("model")
    return replace(outcome, value=rest, seconds=seconds, peak_rss_mb=peak)
