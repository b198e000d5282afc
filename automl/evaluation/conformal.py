"""Split-conformal calibration on out-of-fold predictions (task.coverage).

Regression: a half-width q from the absolute OOF residuals, so [prediction - q, prediction + q] holds the
truth with probability >= coverage on exchangeable new rows. Classification: a threshold per class on the
score 1 - p(true class); the prediction set is every class with p >= 1 - q (class-conditional: one q per
class, so the coverage holds within each class). The quantile is the ceil((n + 1) * coverage)-th smallest
score (Vovk et al.; Angelopoulos & Bates, "A gentle introduction to conformal prediction", 2021).

Normalised regression intervals (task.interval_scale): the score is |residual| / sigma(x), sigma a difficulty
estimate (a model of |residual| cross-fitted on the OOF rows, automl/stages/difficulty.py), and the interval
is prediction -+ q * sigma(x) (Papadopoulos et al. 2008; Lei et al., "Distribution-free predictive inference
for regression", 2018, section 5.2): as valid as the constant width, narrower where rows are easy.
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


def between_ties(scores: np.ndarray, coverage: float) -> float:
    """The conformal quantile moved halfway to the next larger distinct score. Every value in that gap covers
    exactly the same out-of-fold rows, so the guarantee is unchanged; in the middle, the small shift between
    the fold models and the refit model cannot flip a whole cluster of equal scores (a class-prior model on
    pneumonia: OOF p(majority) 0.9799-0.9801, q at the cluster's edge, and the refit's 0.9800 fell outside
    every set, coverage 0)."""
    q = conformal_quantile(scores, coverage)
    above = scores[scores > q + 1e-7] if np.isfinite(q) else scores[:0]
    return float((q + above.min()) / 2) if len(above) else q


@dataclass(frozen=True)
class Conformal:
    task: str
    coverage: float
    qhat: tuple[float, ...]  # regression: (half-width,); classification: one per class
    class_conditional: bool = False
    n_calibration: int = 0
    scale: str = "constant"  # regression: constant | normalised (half-width q * max(sigma(x), sigma_floor))
    sigma_floor: float = 0.0
    choice: tuple[tuple[str, float], ...] = ()  # OOF mean width per scale, when the two were compared

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
            q = tuple(between_ties(scores[y == c], coverage) for c in range(p.shape[1]))
        else:
            q = (between_ties(scores, coverage),) * p.shape[1]
        return cls(task, coverage, tuple(min(v, 1.0) for v in q), class_conditional, len(y))

    def thresholds(self) -> np.ndarray:
        """Classification: the float32 probability each class needs to enter the set (the graph's constant)."""
        return (1.0 - np.asarray(self.qhat, dtype=np.float32)).astype(np.float32)

    @classmethod
    def fit_normalised(cls, y: np.ndarray, oof: np.ndarray, sigma: np.ndarray, coverage: float,
                       sigma_floor: float) -> Conformal:
        """`sigma`: the difficulty of each OOF row, predicted by a model that did not see its residual."""
        s = half_scale(sigma, sigma_floor).astype(np.float64)
        res = np.abs(np.asarray(y, dtype=np.float64) - np.asarray(oof, dtype=np.float64).reshape(-1))
        return cls("regression", coverage, (conformal_quantile(res / s, coverage),), False, len(y), "normalised",
                   float(np.float32(sigma_floor)))

    def half_width(self, sigma: np.ndarray | None = None) -> np.ndarray:
        """float32 half-widths, computed as the graph computes them (one per row, or a scalar)."""
        q = np.float32(self.qhat[0])
        if self.scale != "normalised":
            return np.asarray(q, dtype=np.float32)
        if sigma is None:
            raise ValueError("a normalised interval needs the difficulty sigma(x) of each row")
        return (half_scale(sigma, self.sigma_floor) * q).astype(np.float32)

    def interval(self, pred: np.ndarray, sigma: np.ndarray | None = None) -> np.ndarray:
        p = np.asarray(pred, dtype=np.float32).reshape(-1, 1)
        h = self.half_width(sigma).reshape(-1, 1) if self.scale == "normalised" else self.half_width()
        return np.hstack([p - h, p + h])

    def prediction_set(self, proba: np.ndarray) -> np.ndarray:
        return np.asarray(proba, dtype=np.float32) >= self.thresholds()[None, :]

    def to_json(self) -> dict[str, Any]:
        if self.task != "regression":
            what = "scores 1 - p(true class)"
        elif self.scale == "normalised":
            what = "absolute residuals / difficulty sigma(x)"
        else:
            what = "absolute residuals"
        out: dict[str, Any] = {"coverage": self.coverage, "qhat": [round(v, 6) for v in self.qhat],
                               "class_conditional": self.class_conditional, "calibration_rows": self.n_calibration,
                               "method": "split conformal on out-of-fold " + what}
        if self.task == "regression":
            out["scale"] = self.scale
            if self.scale == "normalised":
                out["sigma_floor"] = self.sigma_floor
        if self.choice:
            out["oof_mean_width"] = {k: round(v, 6) for k, v in self.choice}
        return out


def half_scale(sigma: np.ndarray, floor: float) -> np.ndarray:
    """max(sigma, floor) in float32: the graph's difficulty, kept away from 0 so no row gets a zero width."""
    return np.maximum(np.asarray(sigma, dtype=np.float32).reshape(-1), np.float32(floor))


# normalised intervals must narrow the OOF mean width by this share to be chosen: the difficulty model is
# one more fitted step, and a gain within noise is not worth its cost and its risk on new rows
NARROWER_BY = 0.05
SIGMA_FLOOR_SHARE = 0.05  # the difficulty floor, as a share of the mean absolute OOF residual
MIN_NORMALISED_ROWS = 50  # fewer OOF rows with an honest sigma: the constant width


def choose_scale(y: np.ndarray, oof: np.ndarray, sigma: np.ndarray | None, coverage: float,
                 setting: str = "auto") -> Conformal:
    """Constant or normalised width, on the OOF rows only (the holdout is not looked at): both calibrated to
    `coverage` on the rows with a cross-fitted sigma (NaN: none), the normalised one kept only where its mean
    width there is NARROWER_BY smaller (setting auto), or always (setting normalised)."""
    const = Conformal.fit("regression", y, oof, coverage)
    yy = np.asarray(y, dtype=np.float64)
    pp = np.asarray(oof, dtype=np.float64).reshape(-1)
    res = np.abs(yy - pp)
    if sigma is None or setting == "constant" or not len(res) or float(res.mean()) <= 0:
        return const
    ok = np.isfinite(np.asarray(sigma, dtype=np.float64))
    if ok.sum() < MIN_NORMALISED_ROWS:
        return const
    floor = SIGMA_FLOOR_SHARE * float(res[ok].mean())
    norm = Conformal.fit_normalised(yy[ok], pp[ok], sigma[ok], coverage, floor)
    same_rows = Conformal.fit("regression", yy[ok], pp[ok], coverage)
    widths = (("constant", 2 * same_rows.qhat[0]),
              ("normalised", 2 * float(np.mean(norm.half_width(sigma[ok]).astype(np.float64)))))
    if setting == "normalised" or widths[1][1] < (1 - NARROWER_BY) * widths[0][1]:
        return Conformal("regression", coverage, norm.qhat, False, int(ok.sum()), "normalised", norm.sigma_floor,
                         widths)
    return Conformal("regression", coverage, const.qhat, False, len(res), "constant", 0.0, widths)


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
