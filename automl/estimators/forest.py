"""Random forest and extra trees (bagged decision trees)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from automl.estimators.spec import EstimatorSpec


def _params(params: Mapping[str, Any], seed: int, n_jobs: int) -> dict[str, Any]:
    return dict(
        n_estimators=int(params.get("n_estimators", 200)),
        max_features=float(params.get("max_features", 0.5)),
        min_samples_leaf=int(params.get("min_samples_leaf", 1)),
        max_depth=int(params["max_depth"]) if params.get("max_depth") else None,
        random_state=seed, n_jobs=n_jobs,
    )


def build_rf(params: Mapping[str, Any], *, task: str, seed: int, n_jobs: int = 1) -> Any:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    kw = _params(params, seed, n_jobs)
    if task == "regression":
        return RandomForestRegressor(**kw)
    return RandomForestClassifier(criterion=params.get("criterion", "gini"), **kw)


def build_et(params: Mapping[str, Any], *, task: str, seed: int, n_jobs: int = 1) -> Any:
    from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor

    kw = _params(params, seed, n_jobs)
    if task == "regression":
        return ExtraTreesRegressor(**kw)
    return ExtraTreesClassifier(criterion=params.get("criterion", "gini"), **kw)


RANDOM_FOREST = EstimatorSpec(key="random_forest", name="Random forest", build=build_rf, cost=1.0,
                              toy_params={"n_estimators": 5})
EXTRA_TREES = EstimatorSpec(key="extra_trees", name="Extra trees", build=build_et, cost=0.7,
                            toy_params={"n_estimators": 5})
