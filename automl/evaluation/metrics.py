"""Metric registry: name -> how to score, which tasks it fits, and which way is better.

Classification metrics take integer-coded targets (0..C-1, classes sorted) and a probability
matrix [N, C]; labels come from the probabilities with the engine's one tie rule (first max).
Binary metrics treat the last class as positive.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CLASSIFICATION = frozenset({"binary", "multiclass"})
REGRESSION = frozenset({"regression"})
DEFAULT_METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}


@dataclass(frozen=True)
class Metric:
    name: str
    tasks: frozenset[str]
    direction: str  # maximize | minimize
    fn: Callable[[np.ndarray, np.ndarray, int], float]

    @property
    def greater_is_better(self) -> bool:
        return self.direction == "maximize"

    def __call__(self, y: np.ndarray, pred: np.ndarray, n_classes: int = 0) -> float:
        return float(self.fn(np.asarray(y), np.asarray(pred), n_classes))


def labels_from_proba(proba: np.ndarray) -> np.ndarray:
    return np.argmax(proba, axis=1)  # ties -> first class; the graph uses ArgMax(select_last_index=0)


def _avg(n_classes: int) -> str:
    return "binary" if n_classes == 2 else "macro"


def _roc_auc(y, p, c):
    from sklearn.metrics import roc_auc_score

    if c == 2:
        return roc_auc_score(y, p[:, 1])
    return roc_auc_score(y, p, multi_class="ovr", labels=list(range(c)))


def _log_loss(y, p, c):
    from sklearn.metrics import log_loss

    p = np.clip(p, 1e-15, 1.0)
    return log_loss(y, p / p.sum(axis=1, keepdims=True), labels=list(range(c)))


def _ap(y, p, c):
    from sklearn.metrics import average_precision_score

    if c == 2:
        return average_precision_score(y, p[:, 1])
    return average_precision_score(np.eye(c)[y], p, average="macro")


def _label_metric(name: str):
    def fn(y, p, c):
        import sklearn.metrics as skm

        pred = labels_from_proba(p)
        if name == "accuracy":
            return skm.accuracy_score(y, pred)
        if name == "balanced_accuracy":
            return skm.balanced_accuracy_score(y, pred)
        f = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[name]
        kw = {"pos_label": 1} if c == 2 else {}
        return f(y, pred, average=_avg(c), labels=list(range(c)), zero_division=0, **kw)

    return fn


def _reg(name: str):
    def fn(y, p, c):
        import sklearn.metrics as skm

        p = p.reshape(-1)
        if name == "rmse":
            return float(np.sqrt(skm.mean_squared_error(y, p)))
        if name == "mse":
            return skm.mean_squared_error(y, p)
        if name == "mae":
            return skm.mean_absolute_error(y, p)
        if name == "r2":
            return skm.r2_score(y, p)
        return skm.mean_absolute_percentage_error(y, p)

    return fn


METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("roc_auc", CLASSIFICATION, "maximize", _roc_auc),
        Metric("log_loss", CLASSIFICATION, "minimize", _log_loss),
        Metric("average_precision", CLASSIFICATION, "maximize", _ap),
        *(Metric(n, CLASSIFICATION, "maximize", _label_metric(n))
          for n in ("accuracy", "balanced_accuracy", "precision", "recall", "f1")),
        Metric("rmse", REGRESSION, "minimize", _reg("rmse")),
        Metric("mse", REGRESSION, "minimize", _reg("mse")),
        Metric("mae", REGRESSION, "minimize", _reg("mae")),
        Metric("r2", REGRESSION, "maximize", _reg("r2")),
        Metric("mape", REGRESSION, "minimize", _reg("mape")),
    ]
}


def get_metric(name: str) -> Metric:
    return METRICS[name]


def holdout_metrics(task: str, y: np.ndarray, pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """Every metric that fits the task, for the model card."""
    out = {}
    for m in METRICS.values():
        if task in m.tasks:
            try:
                value = m(y, pred, n_classes)
            except ValueError:
                continue  # e.g. roc_auc with one class present
            if np.isfinite(value):  # sklearn may return NaN instead of raising
                out[m.name] = round(value, 6)
    return out
