"""The difficulty model of normalised conformal intervals (task.interval_scale, regression with
task.coverage): a small gradient-boosted model of |residual| on the raw columns, fitted on the out-of-fold
residuals of the shipped combination. Its predictions sigma(x) are cross-fitted on the CV folds (a row's
sigma comes from a model that never saw that row's residual; with data.time_column, from earlier folds only),
the normalised scores |residual| / sigma(x) give q, and constant or normalised width is chosen on those OOF
rows alone (automl/evaluation/conformal.py choose_scale). The chosen model is exported into the same graph
(automl/export/uncertainty.py): HistGradientBoosting with float32-exact thresholds converts with parity
(compat.md P8), and the engine's default preprocessing for it converts as every trial's does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from automl.evaluation.conformal import Conformal, choose_scale
from automl.search import objective as obj
from automl.search import space as sp

FAMILY = "hist_gradient_boosting"
# shallow and regularised: |residual| is a noisy target, and the model is fitted K + 1 times in the final stage
PARAMS = {"learning_rate": 0.15, "max_iter": 60, "max_leaf_nodes": 8, "min_samples_leaf": 30,
          "l2_regularization": 1.0, "max_features": 1.0}
MAX_ROWS = 5_000  # rows each difficulty fit sees at most (a seeded sample of its training rows): a scale needs few
CROSS_FITS = 3  # the CV folds are merged into this many for the cross-fit (random or grouped folds)


@dataclass(frozen=True)
class Residuals:
    """The out-of-fold rows of the combination being shipped, for the difficulty model."""
    X: pd.DataFrame  # the raw model frame of the OOF rows
    y: np.ndarray
    pred: np.ndarray  # the combination's OOF predictions
    folds: list[np.ndarray]  # validation rows of each CV fold, as positions in X
    groups: np.ndarray | None = None  # data.group_column, for target encoding's cross-fitting
    past_only: bool = False  # data.time_column: a fold's sigma comes from earlier folds only


def candidate(data: obj.SearchData) -> obj.Candidate:
    """The difficulty model's pipeline: FAMILY with PARAMS and the engine's default preprocessing for it."""
    space = data.spaces.get("preprocessing") or sp.load_space("preprocessing", data.space_dir)
    pre = sp.defaults(space, "pre", obj.context_for(data, FAMILY))
    return obj.Candidate(FAMILY, dict(PARAMS), {k.split(".", 1)[1]: v for k, v in pre.items()})


def _fit(data: obj.SearchData, res: Residuals, rows: np.ndarray, target: np.ndarray) -> Any:
    if len(rows) > MAX_ROWS:
        rows = np.sort(np.random.default_rng(data.seed).choice(rows, MAX_ROWS, replace=False))
    groups = None if res.groups is None else res.groups[rows]
    return obj.build(data, candidate(data), groups=groups).fit(res.X.iloc[rows], target[rows])


def cross_fitted_sigma(data: obj.SearchData, res: Residuals) -> np.ndarray:
    """sigma(x) of every OOF row from a difficulty model fitted on other folds' residuals (NaN: no honest
    one, e.g. the first fold of a time-ordered run, which has no earlier residuals)."""
    target = np.abs(np.asarray(res.y, dtype=np.float64) - np.asarray(res.pred, dtype=np.float64).reshape(-1))
    sigma = np.full(len(target), np.nan)
    every = np.arange(len(target))
    folds = res.folds if res.past_only or len(res.folds) <= CROSS_FITS else [
        np.sort(np.concatenate(res.folds[k::CROSS_FITS])) for k in range(CROSS_FITS)]
    for k, va in enumerate(folds):
        rest = (np.concatenate(folds[:k]) if k else np.array([], dtype=int)) if res.past_only \
            else np.setdiff1d(every, va)
        if len(rest) < 2 * PARAMS["min_samples_leaf"]:
            continue
        sigma[va] = np.asarray(_fit(data, res, rest, target).predict(res.X.iloc[va]), dtype=np.float64)
    return sigma


def fit_intervals(data: obj.SearchData, res: Residuals, coverage: float,
                  setting: str = "auto") -> tuple[Conformal, Any]:
    """The interval calibration (constant or normalised, see choose_scale) and, for normalised, the difficulty
    pipeline fitted on all OOF residuals (else None)."""
    from threadpoolctl import threadpool_limits

    # one OpenMP thread: a small model on a busy machine, where spinning threads made these six fits take 5 s
    # instead of 0.2 s (compat.md, threads on a busy machine)
    with threadpool_limits(limits=1):
        return _fit_intervals(data, res, coverage, setting)


def _fit_intervals(data: obj.SearchData, res: Residuals, coverage: float, setting: str) -> tuple[Conformal, Any]:
    if setting == "constant":
        return choose_scale(res.y, res.pred, None, coverage, setting), None
    sigma = cross_fitted_sigma(data, res)
    conf = choose_scale(res.y, res.pred, sigma, coverage, setting)
    if conf.scale != "normalised":
        return conf, None
    target = np.abs(np.asarray(res.y, dtype=np.float64) - np.asarray(res.pred, dtype=np.float64).reshape(-1))
    return conf, _fit(data, res, np.arange(len(target)), target)
