"""Forests export through automl/export/forest_onnx.py: the same predictions as skl2onnx's own converter, to the
bit, for random forests and extra trees (regression, binary, multiclass, string labels); the node's attributes
are written only into the finished graph (the copies skl2onnx makes carry none); and whole pipelines and
ensembles of forests pass the parity gate with nothing left pending."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor, RandomForestClassifier, RandomForestRegressor

pytestmark = pytest.mark.onnx
FOREST_CLASSES = (RandomForestClassifier, ExtraTreesClassifier, RandomForestRegressor, ExtraTreesRegressor)


def _data(n: int = 1500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    X[:, 2] = np.round(X[:, 2], 1)  # ties: thresholds fall between repeated float32 values
    return X, rng.normal(size=n)


def _run(model, X: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    from automl.export.deferred import fill_deferred

    options = {id(model): {"zipmap": False}} if hasattr(model, "classes_") else None
    onx = convert_sklearn(model, initial_types=[("x", FloatTensorType([None, X.shape[1]]))],
                          target_opset={"": 21, "ai.onnx.ml": 3}, options=options)
    fill_deferred(onx)
    sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": X})


def _skl2onnx_own() -> None:
    """skl2onnx's converters back in place for the four forest classes (what skl2onnx registers itself)."""
    from skl2onnx import update_registered_converter
    from skl2onnx.operator_converters.random_forest import (
        convert_sklearn_random_forest_classifier,
        convert_sklearn_random_forest_regressor_converter,
    )
    from skl2onnx.shape_calculators.ensemble_shapes import (
        calculate_tree_classifier_output_shapes,
        calculate_tree_regressor_output_shapes,
    )

    for cls in FOREST_CLASSES:
        clf = cls.__name__.endswith("Classifier")
        update_registered_converter(
            cls, f"Sklearn{cls.__name__}",
            calculate_tree_classifier_output_shapes if clf else calculate_tree_regressor_output_shapes,
            convert_sklearn_random_forest_classifier if clf else convert_sklearn_random_forest_regressor_converter,
            options={"zipmap": [True, False, "columns"], "raw_scores": [True, False], "nocl": [True, False],
                     "output_class_labels": [False, True], "decision_path": [True, False],
                     "decision_leaf": [True, False]} if clf else {"decision_path": [True, False],
                                                                   "decision_leaf": [True, False]})


@pytest.mark.parametrize("make,target", [
    (lambda: RandomForestRegressor(25, min_samples_leaf=1, random_state=0), "regression"),
    (lambda: ExtraTreesRegressor(25, min_samples_leaf=2, random_state=0), "regression"),
    (lambda: RandomForestClassifier(25, random_state=0), "binary"),
    (lambda: ExtraTreesClassifier(25, criterion="entropy", random_state=0), "multiclass"),
    (lambda: RandomForestClassifier(20, min_samples_leaf=3, random_state=0), "strings"),
])
def test_same_predictions_as_skl2onnx_own_converter(make, target):
    from automl.export.forest_onnx import register_forest_converters

    X, noise = _data()
    Xt, _ = _data(800, seed=1)
    Xt[:100] = X[:100]  # rows the trees were grown on: leaves exactly at their thresholds
    signal = X[:, 0] + X[:, 2] ** 2
    y: np.ndarray = {"regression": signal + noise, "binary": (signal + noise > 1).astype(int),
                     "multiclass": np.digitize(signal + noise, [0, 1, 2]),
                     "strings": np.array(["lo", "mid", "hi"])[np.digitize(signal, [0.5, 1.5])]}[target]
    model = make().fit(X, y)
    try:
        _skl2onnx_own()
        theirs = _run(model, Xt)
    finally:
        register_forest_converters()
    ours = _run(model, Xt)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b), float(np.abs(a.astype(float) - b.astype(float)).max())
    expected = model.predict_proba(Xt) if target != "regression" else model.predict(Xt)
    assert np.abs(ours[-1].reshape(expected.shape) - expected).max() < 1e-4


def test_the_node_is_copied_without_its_attributes_and_filled_last():
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    from automl.export import deferred
    from automl.export.converters import register_converters

    register_converters()
    X, noise = _data()
    model = RandomForestRegressor(10, random_state=0).fit(X, X[:, 0] + noise)
    onx = convert_sklearn(model, initial_types=[("x", FloatTensorType([None, 6]))],
                          target_opset={"": 21, "ai.onnx.ml": 3})
    node = next(n for n in onx.graph.node if n.op_type == "TreeEnsembleRegressor")
    assert node.doc_string.startswith(deferred.MARK)
    assert "nodes_treeids" not in {a.name for a in node.attribute}  # skl2onnx's copies carried no tree
    deferred.fill_deferred(onx)
    names = {a.name for a in node.attribute}
    assert {"nodes_treeids", "nodes_values", "target_weights"} <= names and not node.doc_string
    treeids = next(a for a in node.attribute if a.name == "nodes_treeids").ints
    assert len(treeids) == sum(e.tree_.node_count for e in model.estimators_)
    assert deferred.pending() == 0


@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_pipelines_and_ensembles_of_forests_pass_the_parity_gate(task):
    from automl.data.roles import infer_schema, to_model_frame
    from automl.ensemble import WeightedEnsemble
    from automl.estimators import REGISTRY
    from automl.export import deferred
    from automl.export.contract import metadata
    from automl.export.onnx import check_parity, export_onnx
    from automl.preprocessing.pipeline import build_pipeline

    rng = np.random.default_rng(3)
    df = pd.DataFrame(rng.normal(size=(400, 5)), columns=[f"x{i}" for i in range(5)]).assign(
        colour=lambda d: np.where(d.x0 > 0, "red", "blue"))
    score = df.x1 + df.x2 * df.x3 + rng.normal(0, 0.5, 400)
    y = score.to_numpy() if task == "regression" else np.digitize(score, [-0.5, 0.5])
    schema = infer_schema(df.assign(y=y), "y", [], [])
    Xm = to_model_frame(df.assign(y=y), schema)
    members = [build_pipeline(REGISTRY.get(key).build({"n_estimators": 15}, task=task, seed=1), {}, schema, [])
               .fit(Xm, y) for key in ("random_forest", "extra_trees")]
    classes = None if task == "regression" else [0, 1, 2]
    for pipe in (members[0], WeightedEnsemble(members, [0.7, 0.3], task)):
        model = export_onnx(pipe, schema, task, classes, metadata(schema, task, "y", "rmse", classes, "t"))
        assert not any(n.doc_string.startswith(deferred.MARK) for n in model.graph.node)
        assert deferred.pending() == 0
        report = check_parity(model, pipe, Xm, schema, task, 1e-4, 0)
        assert report["passed"], report


@pytest.mark.parametrize("key", ["random_forest", "extra_trees"])
def test_a_forest_holds_at_most_the_node_budget_the_onnx_session_can_afford(monkeypatch, key):
    import automl.estimators.forest as forest
    from automl.estimators import REGISTRY

    X, y = _data(2000)

    def nodes(budget: int) -> int:
        monkeypatch.setattr(forest, "FOREST_NODES", budget)
        model = REGISTRY.get(key).build({"n_estimators": 5, "min_samples_leaf": 1}, task="regression", seed=0)
        return sum(e.tree_.node_count for e in model.fit(X, y).estimators_)

    assert nodes(10**6) > 4000  # in effect unbounded (a leaf per row or so): the budget below binds
    assert nodes(4000) <= 4000
