"""Random forest and extra trees (bagged decision trees)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from automl.estimators.spec import EstimatorSpec

# Nodes a whole forest may hold. onnxruntime's session takes ~400 bytes per tree node (a 150-tree forest of
# 2.38M nodes added ~925 MB: benchmarks/forest_export.py), so an unbounded forest on 16k rows set a run's peak
# memory. 600k nodes is ~240 MB of session. Leaves are capped per tree (grown best-first, as sklearn does with
# max_leaf_nodes); on doctor_contacts and german_health the cap did not cost score at 150 trees (RMSE 3.56 ->
# 3.53 and 3.45 -> 3.46, AUC .8777 -> .8823 and .8865 -> .8870 for min_samples_leaf 1 and 3: RESULTS.md,
# session 30). AutoGluon caps its forests the same way for the same reason (max_leaf_nodes=15000 at 300 trees).
FOREST_NODES = 600_000


def max_leaves(n_estimators: int) -> int:
    """Leaves per tree that keep the forest within FOREST_NODES (a tree of L leaves has 2L - 1 nodes)."""
    return max(2, FOREST_NODES // (2 * max(n_estimators, 1)))


def _params(params: Mapping[str, Any], seed: int, n_jobs: int) -> dict[str, Any]:
    n_estimators = int(params.get("n_estimators", 200))
    return dict(
        n_estimators=n_estimators,
        max_features=float(params.get("max_features", 0.5)),
        min_samples_leaf=int(params.get("min_samples_leaf", 1)),
        max_depth=int(params["max_depth"]) if params.get("max_depth") else None,
        max_leaf_nodes=max_leaves(n_estimators),
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
                              toy_params={"n_estimators": 5}, export_ratio=0.27)
EXTRA_TREES = EstimatorSpec(key="extra_trees", name="Extra trees", build=build_et, cost=0.7,
                            toy_params={"n_estimators": 5}, export_ratio=0.42)
