"""A level-2 stacker: a regularised linear model on the members' out-of-fold predictions, and the fitted
stacked ensemble it ships as.

Classification: multinomial logistic regression on the members' probabilities side by side (M x C
features), so each member's weight may differ per class and the blend is re-calibrated at once.
Regression: non-negative least squares with an intercept on the members' predictions (Breiman's stacked
regressions, 1996: the positivity constraint is what keeps it from over-fitting correlated members).

The features are probabilities, not log-probabilities: a member's float32 graph agrees with its Python
model to ~1e-6 absolute, which the log turns into large errors near p = 0, and the parity gate (1e-5 on
the shipped probabilities) would refuse the graph.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from automl.evaluation.metrics import labels_from_proba


@dataclass(frozen=True)
class Stacker:
    """z = F @ coef + intercept over the members' stacked outputs F; classification: softmax(z)."""
    coef: np.ndarray  # [M*C, C] (classification) or [M, 1] (regression)
    intercept: np.ndarray  # [C] or [1]
    task: str
    strength: float  # the inverse regularisation C (classification) or 0 (regression: NNLS)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "logistic" if self.task != "regression" else "nnls", "C": self.strength,
                "coef": np.round(self.coef, 5).tolist(), "intercept": np.round(self.intercept, 5).tolist()}


def stack_features(preds: Sequence[np.ndarray], task: str) -> np.ndarray:
    """The members' outputs side by side: [N, M*C] probabilities or [N, M] predictions."""
    if task == "regression":
        return np.column_stack([np.asarray(p, dtype=np.float64).reshape(-1) for p in preds])
    return np.hstack([np.asarray(p, dtype=np.float64) for p in preds])


def apply(st: Stacker, F: np.ndarray) -> np.ndarray:
    """The stacker's output on features F: probabilities [N, C] or predictions [N]."""
    z = F @ st.coef + st.intercept
    if st.task == "regression":
        return np.asarray(z[:, 0], dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)


def fit_stacker(F: np.ndarray, y: np.ndarray, task: str, n_classes: int, strength: float, seed: int) -> Stacker:
    """Fit on out-of-fold features F and the target y (int codes, or floats for regression)."""
    if task == "regression":
        from sklearn.linear_model import LinearRegression

        lr = LinearRegression(positive=True).fit(F, y)
        return Stacker(np.asarray(lr.coef_, dtype=np.float64).reshape(-1, 1),
                       np.asarray([lr.intercept_], dtype=np.float64), task, 0.0)
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y, dtype=np.int64)
    clf = LogisticRegression(C=strength, max_iter=500, random_state=seed).fit(F, y)
    coef = np.zeros((F.shape[1], n_classes))
    intercept = np.zeros(n_classes)
    present = np.asarray(clf.classes_, dtype=np.int64)
    if len(present) == 2:  # sklearn's binary form: one logit for the second class against the first
        coef[:, present[1]] = clf.coef_[0]
        intercept[present[1]] = clf.intercept_[0]
        if n_classes > 2:  # only two classes in these rows: the absent ones get no probability mass
            absent = np.setdiff1d(np.arange(n_classes), present)
            intercept[absent] = -50.0
    else:
        coef[:, present] = clf.coef_.T
        intercept[present] = clf.intercept_
        intercept[np.setdiff1d(np.arange(n_classes), present)] = -50.0
    return Stacker(coef, intercept, task, float(strength))


class StackedEnsemble(BaseEstimator):
    """Fitted members (refit on all search rows) and the stacker fitted on their out-of-fold predictions,
    optionally mixed with the uniform distribution (`floor`, as WeightedEnsemble)."""

    def __init__(self, members: list[Any], stacker: Stacker, task: str, floor: float = 0.0):
        self.members = members
        self.stacker = stacker
        self.task = task
        self.floor = floor

    @property
    def classes_(self) -> np.ndarray:
        return self.members[0].classes_

    def _features(self, X: Any) -> np.ndarray:
        if self.task == "regression":
            return stack_features([m.predict(X) for m in self.members], self.task)
        return stack_features([m.predict_proba(X) for m in self.members], self.task)

    def predict_proba(self, X: Any) -> np.ndarray:
        p = apply(self.stacker, self._features(X))
        return (1 - self.floor) * p + self.floor / p.shape[1] if self.floor else p

    def predict(self, X: Any) -> np.ndarray:
        if self.task == "regression":
            return apply(self.stacker, self._features(X))
        return self.classes_[labels_from_proba(self.predict_proba(X))]
