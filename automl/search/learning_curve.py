"""Learning curve over sample sizes: would more rows pay?

When the search works on a sample, one quick model (the histogram gradient boosting family at its
default configuration, with the engine's own preprocessing) is fitted on growing prefixes of the
search sample (which is in random-key order, so each prefix is itself a uniform sample) and scored
on the holdout drawn from the whole file. The gain from the last doubling tells whether a larger
sample (a larger budget.memory_mb) would likely improve the model.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from automl.estimators import REGISTRY
from automl.search.objective import Candidate, SearchData, build, default_params, predict
from automl.search.space import load_space
from automl.search.supervisor import COMPLETE, supervise

log = logging.getLogger("automl")
FAMILY = "hist_gradient_boosting"
MAX_ITER = 100  # boosting rounds (early stopping on): a quick model, not the search's default of 500
HOLDOUT_ROWS = 20_000
FLAT = 0.002  # a gain per doubling below this (in metric units, or relative for rmse/mae) reads as flat


def _fit_score(conn: Any, data: SearchData, n: int, X_hold: Any, y_hold: np.ndarray) -> dict[str, float]:
    if FAMILY not in data.spaces:  # the family may be excluded from the search; the curve still uses it
        data.spaces[FAMILY] = load_space(FAMILY, REGISTRY.get(FAMILY).space_dir or data.space_dir)
    params = default_params(data, FAMILY)
    cand = Candidate(
        FAMILY,
        {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith(FAMILY + ".")},
        {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("pre.")},
        {},
    )
    from threadpoolctl import threadpool_limits

    t0 = time.time()
    pipe = build(data, cand, {"max_iter": MAX_ITER})
    # one thread: OpenMP spin-waiting on a loaded machine made a 500-row fit take seconds, not 0.2 s
    with threadpool_limits(1):
        pipe.fit(data.X.iloc[:n], data.y[:n])
    fit_s = time.time() - t0
    score = data.metric(y_hold, predict(pipe, X_hold, data.task, data.n_classes), data.n_classes)
    return {"rows": n, "score": float(score), "fit_s": round(fit_s, 2)}


def sizes_for(n: int, points: int = 6, smallest: int = 500) -> list[int]:
    """n/32 .. n by doublings (at least `smallest`): the curve goes as far up as its time allows."""
    out = sorted({max(smallest, n >> k) for k in range(points)} | {n})
    return [s for s in out if s <= n]


def learning_curve(
    data: SearchData, X_hold: Any, y_hold: np.ndarray, time_s: float, memory_mb: float
) -> dict[str, Any]:
    """Fits at growing sizes within time_s (each in a supervised child), and a verdict."""
    if len(y_hold) == 0:
        return {"points": [], "verdict": "not measured (no holdout rows)"}
    X_hold, y_hold = (
        X_hold.iloc[:HOLDOUT_ROWS],
        y_hold[:HOLDOUT_ROWS],
    )  # a uniform prefix: scoring stays cheap
    deadline = time.time() + time_s
    points: list[dict[str, float]] = []
    stopped = ""
    for n in sizes_for(len(data.y)):
        left = deadline - time.time()
        # a fit on twice the rows takes about twice as long: skip what cannot finish
        # the next fit: the same process overhead (start, holdout scoring) and about twice the fit time
        if points and left < points[-1]["seconds"] + 1.2 * points[-1]["fit_s"] + 1.0:
            stopped = f"stopped before {n} rows: {left:.1f}s of its {time_s:.0f}s left"
            break
        out = supervise(_fit_score, (data, n, X_hold, y_hold), timeout_s=max(left, 1.0), memory_mb=memory_mb)
        if out.status != COMPLETE:
            stopped = f"{n} rows: {out.status} {out.error}"
            break
        # fit, holdout scoring, process start; the pages the fit owned (USS, polled every 0.25 s)
        points.append({**out.value, "seconds": round(out.seconds, 2), "mem_mb": round(out.peak_rss_mb, 1)})
        log.info(
            "learning curve: %d rows -> holdout %s %.5g (%.1fs)",
            n,
            data.metric.name,
            out.value["score"],
            out.value["fit_s"],
        )
    return {
        "model": f"{FAMILY} (default configuration, max_iter={MAX_ITER}, one thread)",
        "metric": data.metric.name,
        "points": points,
        "stopped": stopped,
        **verdict(points, data.metric.greater_is_better, data.metric.name),
    }


def verdict(points: list[dict[str, float]], greater_is_better: bool, metric: str) -> dict[str, Any]:
    if len(points) < 2:
        return {
            "gain_last_doubling": None,
            "more_data_would_pay": None,
            "verdict": "not enough points to tell whether more data would pay",
        }
    a, b = points[-2], points[-1]
    gain = (b["score"] - a["score"]) if greater_is_better else (a["score"] - b["score"])
    if metric in ("rmse", "mae") and a["score"]:
        gain = gain / abs(a["score"])  # error metrics are in target units: judge the relative gain
    per_doubling = gain / max(np.log2(b["rows"] / a["rows"]), 1e-9)
    pays = bool(per_doubling > FLAT)
    text = (
        f"the holdout {metric} still improves by {per_doubling:.4g} per doubling of rows "
        f"({int(a['rows'])} -> {int(b['rows'])}): more data (a larger budget.memory_mb) would likely pay"
        if pays
        else f"the holdout {metric} is flat ({per_doubling:+.4g} per doubling, {int(a['rows'])} -> {int(b['rows'])} "
        "rows): more data is unlikely to pay"
    )
    return {"gain_last_doubling": round(float(per_doubling), 6), "more_data_would_pay": pays, "verdict": text}
