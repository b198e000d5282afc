"""Deployment constraints during the search: each finished trial's excess over `constraints.*`, for the
sampler's constrained mode (Optuna's `constraints_func`: a trial is feasible when every value is <= 0, and TPE
models the feasible trials apart from the rest).

The figures are cheap estimates, not the final measurement (the final stage measures every candidate graph,
automl/stages/constraints.py): where the search exported the trial (loop.worth_exporting), the graph's size
and its single-row p50 on one thread over a few calls (objective.export_check); otherwise the median of the
same family's exported trials so far (a family's graphs differ far more between families than within one).
A trial with nothing to go on counts as feasible.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def search_constraints(max_latency_ms: float, max_model_mb: float) -> Callable[[Any], Sequence[float]] | None:
    """The constraints function for the sampler, or None when no limit is on."""
    if max_latency_ms <= 0 and max_model_mb <= 0:
        return None
    seen: dict[str, dict[str, list[float]]] = {}  # family -> figure -> the family's exported trials' values

    def excess(trial: Any) -> Sequence[float]:
        attrs, family = trial.user_attrs, trial.params.get("family", "")
        known = seen.setdefault(family, {"mb": [], "ms": []})
        if "onnx_bytes" in attrs:
            known["mb"].append(attrs["onnx_bytes"] / 1e6)
        if "onnx_ms_p50" in attrs:
            known["ms"].append(attrs["onnx_ms_p50"])
        out = []
        for key, limit in (("mb", max_model_mb), ("ms", max_latency_ms)):
            if limit <= 0 or not known[key]:  # off, or nothing measured for this family yet: feasible
                out.append(0.0)
                continue
            own = (attrs["onnx_bytes"] / 1e6 if key == "mb" and "onnx_bytes" in attrs
                   else attrs.get("onnx_ms_p50") if key == "ms" else None)
            value = own if own is not None else float(np.median(known[key]))
            out.append(float(value) - limit)
        return out

    return excess
