"""Split-conformal calibration on out-of-fold predictions (task.coverage).

Regression: a half-width q from the absolute OOF residuals, so [prediction - q, prediction + q] holds the
truth with probability >= coverage on exchangeable new rows. Classification: a threshold per class on the
score 1 - p(true class); the prediction set is every class with p >= 1 - q (class-conditional: one q per
class, so the coverage holds within each class). The quantile is the ceil((n + 1) * coverage)-th smallest
score (Vovk et al.; Angelopoulos & Bates, "A gentle introduction to conformal prediction", 2021).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


def conformal_quantile(scores: np.ndarray, coverage: float) -> float:
    n = len(scores)
    if n == 0:
        return math.inf
    k = math.ceil((n + 1) * coverage)
    if k > n:
        return float(np.max(scores)) if n else math.inf  # too few rows for the guarantee: the widest seen
    return float(np.sort(scores)[k - 1])


@dataclass(frozen=True)
class Conformal:
    task: str
    coverage: float
    qhat: tuple[float, ...]  # regression: (half-width,); classification: one per class
    class_conditional: bool = False
    n_calibration: int = 0

    @classmethod
    def fit(cls, task: str, y: np.ndarray, oof: np.ndarray, coverage: float,
            class_conditional: bool = False) -> Conformal:
        if task == "regression":
            res = np.abs(np.asarray(y, dtype=np.float64) - np.asarray(oof, dtype=np.float64).reshape(-1))
            return cls(task, coverage, (conformal_quantile(res, coverage),), False, len(y))
        y = np.asarray(y, dtype=np.int64)
        p = np.asarray(oof, dtype=np.float64)
        scores = 1.0 - p[np.arange(len(y)), y]
        if class_conditional:
            q = tuple(conformal_quantile(scores[y == c], coverage) for c in range(p.shape[1]))
        else:
            q = (conformal_quantile(scores, coverage),) * p.shape[1]
        return cls(task, coverage, tuple(min(v, 1.0) for v in q), class_conditional, len(y))

    def thresholds(self) -> np.ndarray:
        """Classification: the float32 probability each class needs to enter the set (the graph's constant)."""
        return (1.0 - np.asarray(self.qhat, dtype=np.float32)).astype(np.float32)

    def interval(self, pred: np.ndarray) -> np.ndarray:
        p = np.asarray(pred, dtype=np.float32).reshape(-1, 1)
        q = np.float32(self.qhat[0])
        return np.hstack([p - q, p + q])

    def prediction_set(self, proba: np.ndarray) -> np.ndarray:
        return np.asarray(proba, dtype=np.float32) >= self.thresholds()[None, :]

    def to_json(self) -> dict[str, Any]:
        return {"coverage": self.coverage, "qhat": [round(v, 6) for v in self.qhat],
                "class_conditional": self.class_conditional, "calibration_rows": self.n_calibration,
                "method": "split conformal on out-of-fold " + ("absolute residuals" if self.task == "regression"
                                                                 else "scores 1 - p(true class)")}


def evaluate(conf: Conformal, y: np.ndarray, interval_or_set: np.ndarray) -> dict[str, float]:
    """Measured coverage and mean width (regression) or mean set size (classification)."""
    if conf.task == "regression":
        lo, hi = interval_or_set[:, 0], interval_or_set[:, 1]
        yy = np.asarray(y, dtype=np.float64)
        return {"target_coverage": conf.coverage, "coverage": float(np.mean((yy >= lo) & (yy <= hi))),
                "mean_width": float(np.mean(hi - lo)), "rows": len(yy)}
    sets = np.asarray(interval_or_set, dtype=bool)
    yi = np.asarray(y, dtype=np.int64)
    return {"target_coverage": conf.coverage, "coverage": float(np.mean(sets[np.arange(len(yi)), yi])),
            "mean_set_size": float(sets.sum(axis=1).mean()), "empty_sets": float(np.mean(sets.sum(axis=1) == 0)),
            "rows": len(yi)}
