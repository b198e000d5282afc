"""k-nearest neighbours."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from automl.estimators.spec import EstimatorSpec


def build(params: Mapping[str, Any], *, task: str, seed: int, n_jobs: int = 1) -> Any:
    kw = dict(n_neighbors=int(params.get("n_neighbors", 10)), weights="uniform",
              p=int(params.get("p", 2)), n_jobs=n_jobs)
    from automl.estimators.knn_tiefree import TieFreeKNeighborsClassifier, TieFreeKNeighborsRegressor

    if task == "regression":
        return TieFreeKNeighborsRegressor(**kw)
    return TieFreeKNeighborsClassifier(**kw)


SPEC = EstimatorSpec(key="knn", name="k-nearest neighbours", build=build, needs_scaling=True, cost=0.3,
                     predict_grows=True, export_ratio=0.75)
