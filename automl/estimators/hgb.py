"""scikit-learn HistGradientBoosting, with early stopping on an inner validation split."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from automl.estimators.spec import EstimatorSpec


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
    from automl.estimators.hgb_float32 import Float32HGBClassifier, Float32HGBRegressor

    if task == "regression":
        return Float32HGBRegressor(**kw)
    return Float32HGBClassifier(**kw)


SPEC = EstimatorSpec(key="hist_gradient_boosting", name="HistGradientBoosting", build=build,
                     handles_nan=True, cost=0.6, toy_params={"max_iter": 10}, export_ratio=0.26)
