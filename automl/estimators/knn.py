"""k-nearest neighbours."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from automl.estimators.spec import EstimatorSpec


def build(params: Mapping[str, Any], *, task: str, seed: int, n_jobs: int = 1) -> Any:
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    kw = dict(n_neighbors=int(params.get("n_neighbors", 10)), weights=params.get("weights", "uniform"),
              p=int(params.get("p", 2)), n_jobs=n_jobs)
    if task == "regression":
        return KNeighborsRegressor(**kw)
    return KNeighborsClassifier(**kw)


SPEC = EstimatorSpec(key="knn", name="k-nearest neighbours", build=build, needs_scaling=True, cost=0.3)
