"""Probability calibration chosen on out-of-fold predictions (task.calibration).

Candidates: none, sigmoid (Platt scaling on the logit of p(class 1)) and isotonic (piecewise linear
through the isotonic fit's knots) for binary models; none and temperature (softmax(log p / T)) for
multiclass ones. Each is scored by cross-fitting on the OOF rows (fitted on the other CV folds' rows,
scored on the fold's own), so the choice is not fooled by a calibrator that memorises its rows; the
chosen one is then fitted on all OOF rows and applied inside the graph (automl/export/calibration.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

EPS = 1e-6
METHODS = ("auto", "none", "sigmoid", "isotonic", "temperature")


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class Calibrator:
    method: str  # none | sigmoid | isotonic | temperature
    a: float = 1.0  # sigmoid slope, or 1 / temperature
    b: float = 0.0  # sigmoid intercept
    knots_x: tuple[float, ...] = ()  # isotonic: increasing x, with its values y
    knots_y: tuple[float, ...] = ()

    @classmethod
    def fit(cls, method: str, y: np.ndarray, proba: np.ndarray, sharpen: bool = True) -> Calibrator:
        """sharpen=False: only make the model less confident (temperature >= 1, sigmoid slope <= 1)."""
        y = np.asarray(y, dtype=np.int64)
        if method == "sigmoid":
            from sklearn.linear_model import LogisticRegression

            lr = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(proba[:, 1]).reshape(-1, 1), y)
            if not sharpen and lr.coef_[0, 0] > 1.0:
                return cls("none")
            return cls("sigmoid", float(lr.coef_[0, 0]), float(lr.intercept_[0]))
        if method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(proba[:, 1], y)
            return cls("isotonic", knots_x=tuple(map(float, iso.X_thresholds_)),
                       knots_y=tuple(map(float, iso.y_thresholds_)))
        if method == "temperature":
            from scipy.optimize import minimize_scalar

            logp = np.log(np.clip(proba, EPS, 1.0))

            def nll(log_t: float) -> float:
                z = logp / np.exp(log_t)
                z = z - z.max(axis=1, keepdims=True)
                return float(-np.mean(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(axis=1))))

            t = float(np.exp(minimize_scalar(nll, bounds=(-3.0 if sharpen else 0.0, 3.0), method="bounded").x))
            return cls("temperature", a=1.0 / t)
        return cls("none")

    def __call__(self, proba: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, computed in float32 the way the graph computes them."""
        p = np.asarray(proba, dtype=np.float32)
        if self.method == "none":
            return p
        if self.method == "temperature":
            z = np.log(np.clip(p, np.float32(EPS), np.float32(1.0))) * np.float32(self.a)
            z = np.exp(z - z.max(axis=1, keepdims=True))
            return (z / z.sum(axis=1, keepdims=True)).astype(np.float32)
        p1 = p[:, 1]
        if self.method == "sigmoid":
            c = np.clip(p1, np.float32(EPS), np.float32(1 - EPS))
            q = 1 / (1 + np.exp(-(np.log(c / (1 - c)) * np.float32(self.a) + np.float32(self.b))))
        else:
            q = isotonic_eval(p1, self)
        q = q.astype(np.float32)
        return np.stack([1 - q, q], axis=1)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method}
        if self.method == "sigmoid":
            out.update(a=self.a, b=self.b)
        elif self.method == "temperature":
            out["temperature"] = 1.0 / self.a
        elif self.method == "isotonic":
            out["knots"] = len(self.knots_x)
        return out


def isotonic_segments(cal: Calibrator) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(lower, upper, slope, y0) of the piecewise-linear map: f(x) = y0 + sum slope_k (clip(x, lo_k, hi_k) - lo_k)."""
    x = np.asarray(cal.knots_x, dtype=np.float32)
    y = np.asarray(cal.knots_y, dtype=np.float32)
    if len(x) < 2:
        return np.zeros(1, np.float32), np.ones(1, np.float32), np.zeros(1, np.float32), float(y[0] if len(y) else 0)
    dx = np.diff(x)
    slope = np.where(dx > 0, np.diff(y) / np.where(dx > 0, dx, 1), 0).astype(np.float32)
    return x[:-1], x[1:], slope, float(y[0])


def isotonic_eval(p1: np.ndarray, cal: Calibrator) -> np.ndarray:
    lo, hi, slope, y0 = isotonic_segments(cal)
    x = np.asarray(p1, dtype=np.float32).reshape(-1, 1)
    return (np.float32(y0) + ((np.minimum(np.maximum(x, lo), hi) - lo) * slope).sum(axis=1)).astype(np.float32)


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    p = np.clip(np.asarray(proba, dtype=np.float64)[np.arange(len(y)), np.asarray(y, dtype=np.int64)], 1e-15, 1)
    return float(-np.mean(np.log(p)))


def reliability(y: np.ndarray, proba: np.ndarray, n_bins: int = 10) -> dict[str, Any]:
    """Brier score, expected calibration error (top-class confidence) and the reliability bins."""
    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(proba, dtype=np.float64)
    onehot = np.eye(p.shape[1])[y]
    conf, pred = p.max(axis=1), p.argmax(axis=1)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    rows, ece = [], 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            acc, c = float(np.mean(pred[m] == y[m])), float(np.mean(conf[m]))
            ece += m.mean() * abs(acc - c)
            rows.append({"confidence": round(c, 4), "accuracy": round(acc, 4), "rows": int(m.sum())})
    return {"brier": float(np.mean(((p - onehot) ** 2).sum(axis=1))), "ece": float(ece), "bins": rows}


@dataclass
class Choice:
    calibrator: Calibrator
    oof_log_loss: dict[str, float] = field(default_factory=dict)  # cross-fitted, per candidate
    calibrated_oof: np.ndarray | None = None  # the chosen method's cross-fitted OOF probabilities


def candidates(setting: str, n_classes: int, isotonic: bool = True) -> list[str]:
    """`isotonic=False` under ranking metrics (roc_auc, average_precision): its flat steps tie rows the model
    ranked apart, which costs ranking; sigmoid and temperature keep the order."""
    if setting not in ("auto", ""):
        return ["none", setting] if setting != "none" else ["none"]
    if n_classes == 2:
        return ["none", "sigmoid", "isotonic"] if isotonic else ["none", "sigmoid"]
    return ["none", "temperature"]


def choose(setting: str, y: np.ndarray, oof: np.ndarray, folds: list[np.ndarray], isotonic: bool = True,
           sharpen: bool = True, past_only: bool = False) -> Choice:
    """The candidate with the lowest cross-fitted OOF log loss. `folds`: the validation rows of each fold,
    as positions in `y` / `oof`. sharpen=False (the log loss metric, whose probability floor is chosen before
    calibration): only calibrators that make the model less confident, and no isotonic (its 0 and 1 ends):
    on near-separable data the OOF rows show no miss, a temperature of 0.05 won on them, and one confident
    miss on the holdout then cost 1.26 log loss against 0.005. past_only (data.time_column, folds in time
    order): a fold's calibrator is fitted on earlier folds' rows only, so no future row scores a candidate."""
    y = np.asarray(y, dtype=np.int64)
    scores: dict[str, float] = {}
    crossed: dict[str, np.ndarray] = {}
    for method in candidates(setting, oof.shape[1], isotonic and sharpen):
        out = np.asarray(oof, dtype=np.float32).copy()
        if method != "none":
            for k, va in enumerate(folds):
                rest = (np.concatenate(folds[:k]) if k else np.array([], dtype=int)) if past_only \
                    else np.setdiff1d(np.arange(len(y)), va)
                if len(np.unique(y[rest])) < 2:
                    continue  # a calibrator needs both classes (and some rows): the fold keeps its raw probabilities
                out[va] = Calibrator.fit(method, y[rest], oof[rest], sharpen)(oof[va])
        crossed[method], scores[method] = out, log_loss(y, out)
    best = min(scores, key=lambda k: scores[k])
    return Choice(Calibrator.fit(best, y, oof, sharpen), scores, crossed[best])


class Calibrated:
    """A fitted classifier whose probabilities pass through a calibrator (the Python side of the graph)."""
    def __init__(self, inner: Any, calibrator: Calibrator):
        self.inner = inner
        self.calibrator = calibrator
        self.classes_ = inner.classes_

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.calibrator(self.inner.predict_proba(X)).astype(np.float64)

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.classes_)[self.predict_proba(X).argmax(axis=1)]
