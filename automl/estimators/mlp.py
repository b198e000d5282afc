"""Multi-layer perceptron (scikit-learn), early-stopped."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from automl.estimators.spec import EstimatorSpec


def build(params: Mapping[str, Any], *, task: str, seed: int, n_jobs: int = 1) -> Any:
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    width = int(params.get("width", 64))
    layers = (width,) * int(params.get("n_layers", 1))
    kw = dict(hidden_layer_sizes=layers, alpha=float(params.get("alpha", 1e-4)),
              learning_rate_init=float(params.get("learning_rate_init", 1e-3)),
              max_iter=int(params.get("max_iter", 300)), early_stopping=True, n_iter_no_change=10,
              random_state=seed)
    if task == "regression":
        return MLPRegressor(**kw)
    return MLPClassifier(**kw)


SPEC = EstimatorSpec(key="mlp", name="Multi-layer perceptron", build=build, needs_scaling=True, cost=1.0,
                     toy_params={"max_iter": 20}, export_ratio=0.17)
