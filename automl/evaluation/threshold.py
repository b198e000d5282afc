"""Decision-threshold tuning for binary label metrics, on out-of-fold predictions.

The label of a binary model is `proba[:, 1] >= t`. For a metric a threshold changes (f1,
balanced_accuracy, accuracy, precision_at_recall, recall_at_precision) t is chosen where the metric
is best on out-of-fold predictions, i.e. on rows no model being scored was fitted on. The exported
graph applies the same t (automl/export/onnx.py), so `label` and the Python pipeline agree.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from automl.evaluation.metrics import Metric


def applies(metric: Metric, task: str, enabled: bool = True) -> bool:
    return enabled and task == "binary" and metric.tunable


def tune(metric: Metric, y: np.ndarray, p1: np.ndarray) -> tuple[float, float]:
    """(threshold, score): the best of every distinct cut of p1, t placed midway between the lowest
    score called positive and the next lower one (in float32, the graph's precision)."""
    assert metric.counts is not None
    p = np.asarray(p1, dtype=np.float32).astype(np.float64)
    pos = np.asarray(y) == 1
    order = np.argsort(-p, kind="stable")
    p_sorted, pos_sorted = p[order], pos[order]
    last = np.r_[np.flatnonzero(np.diff(p_sorted) != 0), len(p) - 1]  # last row of each distinct value
    tp = np.cumsum(pos_sorted)[last].astype(np.float64)
    fp = (last + 1 - tp).astype(np.float64)
    n_pos, n_neg = float(pos.sum()), float((~pos).sum())
    # cut k: rows with p >= distinct[k] are positive; k = -1 (nobody positive) comes first
    tp, fp = np.r_[0.0, tp], np.r_[0.0, fp]
    scores = metric.counts(tp, fp, n_pos - tp, n_neg - fp)
    k = int(np.argmax(scores))  # ties: the first, i.e. the highest threshold
    distinct = p_sorted[last]
    if k == 0:
        t = np.nextafter(np.float32(distinct[0]), np.float32(np.inf)) if len(distinct) else np.float32(0.5)
    else:
        hi = np.float32(distinct[k - 1])
        lo = np.float32(distinct[k]) if k < len(distinct) else np.float32(-np.inf)
        t = np.float32((float(hi) + float(lo)) / 2) if np.isfinite(lo) else hi
        if not (lo < t <= hi):  # adjacent float32 values: no midpoint between them
            t = hi
    return float(t), float(scores[k])


def scorer(metric: Metric, n_classes: int, task: str, enabled: bool) -> Callable[[np.ndarray, np.ndarray], float]:
    """score(y, proba) for comparing out-of-fold predictions (ensemble selection): at the tuned
    threshold where tuning applies, else the metric as it is."""
    if applies(metric, task, enabled):
        return lambda y, p: tune(metric, y, p[:, 1])[1]
    return lambda y, p: metric(y, p, n_classes)


def for_members(metric: Metric, task: str, enabled: bool, y: np.ndarray, oofs: list[np.ndarray],
                weights: list[float]) -> float | None:
    """The shipped model's threshold, on the out-of-fold predictions of its final combination."""
    if not applies(metric, task, enabled) or not oofs:
        return None
    oof = sum(w * o.astype(np.float64) for o, w in zip(oofs, weights, strict=True))
    assert isinstance(oof, np.ndarray)  # oofs is not empty (checked above)
    return tune(metric, y, oof[:, 1])[0]
