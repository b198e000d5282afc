"""Metric registry: name -> how to score, which tasks it fits, and which way is better.

Classification metrics take integer-coded targets (0..C-1, classes sorted) and a probability
matrix [N, C]; labels come from the probabilities with the engine's one tie rule (first max).
Binary metrics treat the last class as positive.

Label metrics of a binary task may be scored at a decision threshold (label = proba[:, 1] >= t) instead
of the first-max rule: automl/evaluation/threshold.py chooses t on out-of-fold predictions, and the
graph's `label` output applies the same t. `precision_at_recall` / `recall_at_precision` carry their
declared minimum (task.min_recall / task.min_precision) and score 0 where the minimum is not met.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

CLASSIFICATION = frozenset({"binary", "multiclass"})
REGRESSION = frozenset({"regression"})
BINARY = frozenset({"binary"})
CONSTRAINED = {"precision_at_recall": "min_recall", "recall_at_precision": "min_precision"}  # metric -> task.<field>
DEFAULT_METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}
Direction = Literal["maximize", "minimize"]  # an Optuna study direction


@dataclass(frozen=True)
class Metric:
    name: str
    tasks: frozenset[str]
    direction: Direction
    fn: Callable[[np.ndarray, np.ndarray, int], float]
    # binary label metrics: the score from confusion counts (arrays: one entry per threshold), which
    # makes them tunable (automl/evaluation/threshold.py) and scorable at a threshold
    counts: Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None
    tune: bool = False  # the search picks a decision threshold for it (not precision or recall alone:
    # a threshold maximises those trivially, by calling every row positive or none)
    minimum: float | None = None  # a constrained metric's declared minimum (get_metric)

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled by name: its functions are closures, and a run hands its metric to another process
        # (automl/lean_fork.py)
        return (get_metric, (self.name, self.minimum))

    @property
    def greater_is_better(self) -> bool:
        return self.direction == "maximize"

    @property
    def tunable(self) -> bool:
        """A decision threshold changes this metric (binary tasks)."""
        return self.tune and self.counts is not None

    def __call__(self, y: np.ndarray, pred: np.ndarray, n_classes: int = 0, threshold: float | None = None) -> float:
        y, pred = np.asarray(y), np.asarray(pred)
        if threshold is not None and self.counts is not None and n_classes == 2:
            lab = labels_from_proba(pred, threshold).astype(bool)
            pos = y == 1
            tp, fp = np.sum(lab & pos), np.sum(lab & ~pos)
            fn, tn = np.sum(~lab & pos), np.sum(~lab & ~pos)
            return float(self.counts(*(np.asarray([v], dtype=np.float64) for v in (tp, fp, fn, tn)))[0])
        return float(self.fn(y, pred, n_classes))


def labels_from_proba(proba: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """The engine's one decision rule, class indices from probabilities: first max (the graph's
    ArgMax(select_last_index=0)), or for a binary task with a decision threshold, proba[:, 1] >= t
    compared in float32 as the graph does. The graph's `label`, the model card's per-class table, the
    report's confusion matrix and the label metrics all take their labels from it."""
    if threshold is not None and proba.shape[1] == 2:
        return (np.asarray(proba[:, 1], dtype=np.float32) >= np.float32(threshold)).astype(np.int64)
    return np.argmax(proba, axis=1)


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


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def _counts_formula(name: str, minimum: float = 0.0):
    """Binary score from confusion counts (tp, fp, fn, tn), vectorised over thresholds."""
    def fn(tp, fp, fn_, tn):
        precision, recall = _div(tp, tp + fp), _div(tp, tp + fn_)
        if name == "accuracy":
            return _div(tp + tn, tp + fp + fn_ + tn)
        if name == "balanced_accuracy":
            return (recall + _div(tn, tn + fp)) / 2
        if name == "f1":
            return _div(2 * tp, 2 * tp + fp + fn_)
        if name == "precision":
            return precision
        if name == "recall":
            return recall
        if name == "precision_at_recall":
            return np.where(recall >= minimum - 1e-12, precision, 0.0)
        return np.where(precision >= minimum - 1e-12, recall, 0.0)  # recall_at_precision

    return fn


def _constrained(name: str, minimum: float):
    formula = _counts_formula(name, minimum)

    def fn(y, p, c):
        if c != 2:
            raise ValueError(f"{name} is defined for binary tasks")
        lab, pos = labels_from_proba(p).astype(bool), np.asarray(y) == 1
        return float(formula(*(np.asarray([v], dtype=np.float64) for v in (
            np.sum(lab & pos), np.sum(lab & ~pos), np.sum(~lab & pos), np.sum(~lab & ~pos))))[0])

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
        *(Metric(n, CLASSIFICATION, "maximize", _label_metric(n), _counts_formula(n),
                 tune=n in ("accuracy", "balanced_accuracy", "f1"))
          for n in ("accuracy", "balanced_accuracy", "precision", "recall", "f1")),
        Metric("precision_at_recall", BINARY, "maximize", _constrained("precision_at_recall", 0.5),
               _counts_formula("precision_at_recall", 0.5), tune=True),
        Metric("recall_at_precision", BINARY, "maximize", _constrained("recall_at_precision", 0.5),
               _counts_formula("recall_at_precision", 0.5), tune=True),
        Metric("rmse", REGRESSION, "minimize", _reg("rmse")),
        Metric("mse", REGRESSION, "minimize", _reg("mse")),
        Metric("mae", REGRESSION, "minimize", _reg("mae")),
        Metric("r2", REGRESSION, "maximize", _reg("r2")),
        Metric("mape", REGRESSION, "minimize", _reg("mape")),
    ]
}


def get_metric(name: str, minimum: float | None = None) -> Metric:
    """The metric; a constrained one (precision_at_recall, recall_at_precision) with its declared minimum."""
    m = METRICS[name]
    if name in CONSTRAINED and minimum is not None:
        from dataclasses import replace

        m = replace(m, fn=_constrained(name, minimum), counts=_counts_formula(name, minimum), minimum=minimum)
    return m


def holdout_metrics(task: str, y: np.ndarray, pred: np.ndarray, n_classes: int,
                    threshold: float | None = None, chosen: Metric | None = None) -> dict[str, float]:
    """Every metric that fits the task, for the model card; label metrics at the model's decision
    threshold. A constrained metric appears only as the run's own (`chosen`, with its minimum)."""
    out = {}
    metrics = [m for m in METRICS.values() if m.name not in CONSTRAINED]
    if chosen is not None and chosen.name in CONSTRAINED:
        metrics.append(chosen)
    for m in metrics:
        if task in m.tasks:
            try:
                value = m(y, pred, n_classes, threshold)
            except ValueError:
                continue  # e.g. roc_auc with one class present
            if np.isfinite(value):  # sklearn may return NaN instead of raising
                out[m.name] = round(value, 6)
    return out


def per_class_report(y: np.ndarray, proba: np.ndarray, classes: list | None,
                     threshold: float | None = None) -> list[dict]:
    """Precision, recall, F1 and support per class, labels at the model's decision rule (model card)."""
    from sklearn.metrics import precision_recall_fscore_support

    c = proba.shape[1]
    pred = labels_from_proba(np.asarray(proba), threshold)
    p, r, f, s = precision_recall_fscore_support(np.asarray(y), pred, labels=list(range(c)), zero_division=0)
    names = classes if classes is not None else list(range(c))
    return [{"class": str(names[i]), "precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4),
             "f1": round(float(f[i]), 4), "support": int(s[i]), "predicted": int((pred == i).sum())}
            for i in range(c)]
