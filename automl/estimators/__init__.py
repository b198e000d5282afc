"""The estimator manifest: one line per family. Its conformance tests follow automatically."""
from __future__ import annotations

from automl.estimators import baseline, catboost, forest, hgb, knn, linear, mlp
from automl.estimators.spec import EstimatorSpec
from automl.registry import Registry

REGISTRY: Registry[EstimatorSpec] = Registry(
    "estimator family",
    [
        baseline.SPEC,
        linear.SPEC,
        forest.RANDOM_FOREST,
        forest.EXTRA_TREES,
        hgb.SPEC,
        catboost.SPEC,
        knn.SPEC,
        mlp.SPEC,
    ],
)
