"""The search driver leaves CatBoost, and IPython with it, to the processes that fit it (issue 17).

On small data the driver is the largest process of a run (what GNU time's %M reports), and every forked
trial starts from its pages: catboost's own import pulled in IPython (~480 modules, ~21 MB) through its
notebook widget wherever IPython is installed, and the driver imported CatBoost itself (~19 MB) to preload
it and to see whether it takes class weights. The export stack (onnx, skl2onnx) it loads only where trials
export (a memory budget, constraints, several objectives), to share it with them.
These run the driver's own start-up in a fresh interpreter and check what it holds."""
from __future__ import annotations

import pytest

from tests.cli_runner import python_json

DRIVER = """
import json, sys
import automl.cli, automl.run  # the driver's entry modules
from automl.config.compose import compose, to_run_config
from automl.estimators import REGISTRY
from automl.memory import MemoryBudget
from automl.preprocessing.imbalance import context
from automl.stages.prepare import load_libraries

cfg = to_run_config(compose(["data.path=x.csv", "task.target=y"]))
load_libraries(cfg, MemoryBudget(100_000.0, "test"))  # room to preload: what a roomy budget loads
for task in ("binary", "multiclass"):  # what the driver computes for warm start and sampling
    for key in REGISTRY.keys():
        context(REGISTRY.get(key), task)
held = {m: m in sys.modules for m in ("catboost", "IPython", "lightgbm", "xgboost", "skl2onnx", "onnx")}
from catboost import CatBoostClassifier  # a trial's import, as a forked trial makes it
held["IPython_after_catboost"] = "IPython" in sys.modules
held["widget_skipped"] = "catboost.widget" in sys.modules and sys.modules["catboost.widget"] is None
model = CatBoostClassifier(iterations=2, verbose=False, allow_writing_files=False)
held["catboost_fits"] = model.fit([[0], [1]] * 5, [0, 1] * 5).tree_count_
tight = to_run_config(compose(["data.path=x.csv", "task.target=y", "budget.memory_mb=300"]))
load_libraries(tight, MemoryBudget(300.0, "test"))  # trials export under it: the stack is shared from the driver
held["stack_under_a_tight_budget"] = "skl2onnx" in sys.modules
print("HELD " + json.dumps(held))
"""


def _driver_holds() -> dict[str, object]:
    return python_json(DRIVER, tag="HELD ")


def test_driver_start_leaves_catboost_and_ipython_out():
    held = _driver_holds()
    assert not held["skl2onnx"] and not held["onnx"]  # no trial exports: the final stage's refits load it
    assert held["stack_under_a_tight_budget"]
    assert held["lightgbm"] and held["xgboost"]  # preloaded: each of their trials is spared the import
    assert not held["catboost"], "the driver imported CatBoost (preload or a bare build for class weights)"
    assert held["widget_skipped"] and not held["IPython_after_catboost"]  # catboost loads without its widget
    assert held["catboost_fits"] == 2


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_declared_class_weights_are_what_a_built_estimator_takes(task):
    from automl.estimators import REGISTRY
    from automl.preprocessing.imbalance import supports_weights

    declared = [spec for spec in REGISTRY if spec.class_weights is not None and task in spec.tasks]
    assert declared  # CatBoost says so, so that the driver need not import it to see
    for spec in declared:
        built = spec.build({}, task=task, seed=0, n_jobs=1)
        assert bool(supports_weights(built)) is spec.class_weights, spec.key
