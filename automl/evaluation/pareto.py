"""The Pareto front of score against deployment cost: a point is on the front when no other point is at least
as good on every axis and better on one. Costs (latency, size) are lower-is-better; the score's direction is
the metric's."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

COSTS = ("latency", "size")  # search.objectives beside the metric, both lower-is-better


def objective_names(names: Sequence[str], metric: str = "") -> tuple[str, ...]:
    """search.objectives as the study takes them: ("metric", *costs in the order given). `metric` (task.metric's
    name) may stand for "metric". Raises ValueError naming what is wrong (config/validate.py words it)."""
    costs = []
    seen_metric = False
    for n in names:
        if n == "metric" or (metric and n == metric):
            if seen_metric:
                raise ValueError("the metric is listed twice")
            seen_metric = True
        elif n in COSTS:
            if n in costs:
                raise ValueError(f"'{n}' is listed twice")
            costs.append(n)
        else:
            raise ValueError(f"unknown objective '{n}'")
    if not seen_metric:
        raise ValueError("the metric is missing (every study optimises it)")
    return ("metric", *costs)


def front_mask(scores: Sequence[float], costs: Sequence[Sequence[float]], greater_is_better: bool) -> np.ndarray:
    """True for the points on the front. `costs[i]` holds point i's costs (each lower-is-better); a point
    with a missing (NaN) score or cost is never on it."""
    s = np.asarray(scores, dtype=np.float64)
    c = np.asarray(costs, dtype=np.float64).reshape(len(s), -1)
    # every axis lower-is-better
    axes = np.column_stack([-s if greater_is_better else s, c])
    ok = ~np.isnan(axes).any(axis=1)
    mask = np.zeros(len(s), dtype=bool)
    for i in np.flatnonzero(ok):
        others = axes[ok]
        dominated = ((others <= axes[i]).all(axis=1) & (others < axes[i]).any(axis=1)).any()
        mask[i] = not dominated
    return mask


def constraint_cost(scores: Sequence[float], cost: Sequence[float], limit: float,
                    greater_is_better: bool) -> tuple[int | None, float | None]:
    """(index of the best point whose cost is within `limit`, its score given up against the best point
    overall: positive = worse); (None, None) when no point meets the limit."""
    s = np.asarray(scores, dtype=np.float64)
    c = np.asarray(cost, dtype=np.float64)
    sign = 1.0 if greater_is_better else -1.0
    ok = np.flatnonzero((c <= limit) & ~np.isnan(s))
    if not len(ok):
        return None, None
    best_in = ok[np.argmax(sign * s[ok])]
    best = np.nanmax(sign * s)
    return int(best_in), float(best - sign * s[best_in])
