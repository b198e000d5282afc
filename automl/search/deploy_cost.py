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


# search.objectives' cost names -> (the trial attr its measurement is in, scale to the objective's unit)
COST_ATTRS = {"latency": ("onnx_ms_p50", 1.0), "size": ("onnx_bytes", 1e-6)}  # ms per row; MB


def cost_values(costs: Sequence[str], attrs: dict[str, Any], family: str,
                measured: Sequence[tuple[str, dict[str, Any]]]) -> tuple[list[float], str]:
    """A finished trial's values for the cost objectives (`costs`, in order: latency in ms, size in MB) and where
    they come from: "measured" (its own graph, exported and timed by the search: objective.export_check), or,
    for a trial the search did not export, "estimate: ..." from `measured`, the (family, attrs) of the trials
    whose graph was measured: the median of its family's, else of all of them, else +inf (nothing measured yet:
    the study ranks it behind every measured trial on that axis)."""
    if all(COST_ATTRS[c][0] in attrs for c in costs):
        return [float(attrs[COST_ATTRS[c][0]]) * COST_ATTRS[c][1] for c in costs], "measured"
    out, how = [], set()
    for c in costs:
        key, scale = COST_ATTRS[c]
        same = [a[key] for fam, a in measured if fam == family and key in a]
        pool = same or [a[key] for _, a in measured if key in a]
        how.add(f"median of {len(pool)} measured {family} trial(s)" if same
                else f"median of {len(pool)} measured trial(s) of any family" if pool else "none measured: +inf")
        out.append(float(np.median(pool)) * scale if pool else float("inf"))
    return out, "estimate: " + "; ".join(sorted(how))
