"""The simple baseline: class priors (classification) or the training mean (regression)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from automl.estimators.spec import EstimatorSpec


def build(params: Mapping[str, Any], *, task: str, seed: int, n_jobs: int = 1) -> Any:
    from sklearn.dummy import DummyClassifier, DummyRegressor

    if task == "regression":
        return DummyRegressor(strategy="mean")
    return DummyClassifier(strategy="prior")


SPEC = EstimatorSpec(key="baseline", name="Baseline (prior / mean)", build=build, onnx="registered",
                     cost=0.01, interpretable=True, imbalance=False, export_ratio=0.58,
                     uses_features=False)  # the prior stays the prior
