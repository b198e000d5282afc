"""scikit-learn HistGradientBoosting, with early stopping on an inner validation split."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from automl.estimators.spec import EstimatorSpec


def snap_thresholds(est: Any) -> None:
    """Replace each split threshold t by the largest float32 <= t.

    The model sees float32 features (automl/preprocessing/steps.Float32Cast), so for every input
    x <= t and x <= floor32(t) decide alike: predictions do not change. The ONNX graph stores
    thresholds as float32; rounding t to nearest could land exactly on a data value and send it
    the other way (compat.md P8). After snapping, both runtimes compare against the same number.
    """
    for per_class in est._predictors:
        for predictor in per_class:
            t = predictor.nodes["num_threshold"]
            t32 = t.astype(np.float32)
            over = t32.astype(np.float64) > t
            t32[over] = np.nextafter(t32[over], np.float32(-np.inf))
            predictor.nodes["num_threshold"] = t32.astype(np.float64)


class Float32HGBClassifier(HistGradientBoostingClassifier):
    def fit(self, X, y, sample_weight=None):
        super().fit(X, y, sample_weight=sample_weight)
        snap_thresholds(self)
        return self


class Float32HGBRegressor(HistGradientBoostingRegressor):
    def fit(self, X, y, sample_weight=None):
        super().fit(X, y, sample_weight=sample_weight)
        snap_thresholds(self)
        return self


def build(params: Mapping[str, Any], *, task: str, seed: int, n_jobs: int = 1) -> Any:
    kw = dict(
        learning_rate=float(params.get("learning_rate", 0.1)),
        max_iter=int(params.get("max_iter", 500)),
        max_leaf_nodes=int(params.get("max_leaf_nodes", 31)),
        min_samples_leaf=int(params.get("min_samples_leaf", 20)),
        l2_regularization=float(params.get("l2_regularization", 0.0)),
        max_features=float(params.get("max_features", 1.0)),
        early_stopping=True, validation_fraction=0.1, n_iter_no_change=20,
        random_state=seed,
    )
    if task == "regression":
        return Float32HGBRegressor(**kw)
    return Float32HGBClassifier(**kw)


SPEC = EstimatorSpec(key="hist_gradient_boosting", name="HistGradientBoosting", build=build,
                     handles_nan=True, cost=0.6, toy_params={"max_iter": 10})
