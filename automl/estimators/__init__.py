"""The estimator manifest: one line per family. Its conformance tests follow automatically.

Families from elsewhere (e.g. the test suite's fault-injection families) join through
AUTOML_PLUGINS=module[,module]: each module calls REGISTRY.add(SPEC) when imported.
"""
from __future__ import annotations

import importlib
import os

from automl.estimators import baseline, catboost, forest, hgb, knn, lightgbm, linear, mlp, xgb
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
        lightgbm.SPEC,
        xgb.SPEC,
        knn.SPEC,
        mlp.SPEC,
    ],
)

for _plugin in filter(None, os.environ.get("AUTOML_PLUGINS", "").split(",")):
    importlib.import_module(_plugin.strip())
