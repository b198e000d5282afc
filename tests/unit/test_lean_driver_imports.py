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


SYNTHESIS = """
import json, sys
import numpy as np, pandas as pd
from automl.data.roles import infer_schema
from automl.features.synthesis import enumerated
from automl.search.enumerate_ahead import MAX_NUMERIC, synthesis_ready
from automl.search.space import load_space

out = {}
for case, n, pre in (("no_synthesis", 3, {"dfs": False}), ("dfs", 3, {"dfs": True}),
                     ("too_wide", MAX_NUMERIC + 1, {"dfs": True})):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({f"c{i}": rng.normal(0, 1, 40) for i in range(n)}).assign(y=rng.integers(0, 2, 40))
    schema = infer_schema(df, "y", [], [])
    synthesis_ready(pre, load_space("preprocessing"), schema)  # what sampling the trial's pipeline does first
    out[case] = {"featuretools": "featuretools" in sys.modules,
                 "known": enumerated("numeric", schema.names("numeric"))}
print("HELD " + json.dumps(out))
"""


def test_a_sampled_synthesis_is_enumerated_in_a_child_and_wide_data_import_featuretools():
    """A worker whose trial first needs featuretools' enumeration asks a child for all of it and keeps
    featuretools out of its own memory (and its trials'); past MAX_NUMERIC numeric columns it imports it."""
    held = python_json(SYNTHESIS, tag="HELD ")
    assert held["no_synthesis"] == {"featuretools": False, "known": False}  # nothing asked, nothing done
    assert held["dfs"] == {"featuretools": False, "known": True}
    assert held["too_wide"] == {"featuretools": True, "known": False}
