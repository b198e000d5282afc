"""CatBoost's tree nodes get their attributes only once the whole graph is built (export.deferred.fill_deferred):
the graph's copies inside skl2onnx and the ensemble assembly carry them without, which is what kept a
depth-8 CatBoost's export from being the largest allocation of a run (issue 17). The shipped graph must be
the same: every node filled, no marker left, parity on single models and on ensembles of CatBoosts."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("catboost")


def _frame():
    from automl.data.roles import infer_schema, to_model_frame

    rng = np.random.default_rng(1)
    df = pd.DataFrame(rng.normal(size=(300, 6)), columns=[f"x{i}" for i in range(6)]).assign(
        colour=lambda d: np.where(d.x0 > 0, "red", "blue"))
    y = ((df.x1 + df.x2 * df.x3 + rng.normal(0, 0.5, 300)) > 0).astype(int).to_numpy()
    schema = infer_schema(df.assign(y=y), "y", [], [])
    return schema, to_model_frame(df.assign(y=y), schema), y


def _catboost(schema, Xm, y, depth: int):
    from automl.estimators import REGISTRY
    from automl.preprocessing.pipeline import build_pipeline

    est = REGISTRY.get("catboost").build({"iterations": 30, "depth": depth}, task="binary", seed=depth)
    return build_pipeline(est, {}, schema, []).fit(Xm, y)


@pytest.mark.onnx
def test_an_ensemble_of_catboosts_exports_filled_with_parity():
    from automl.ensemble import WeightedEnsemble
    from automl.export import deferred
    from automl.export.contract import metadata
    from automl.export.onnx import check_parity, export_onnx

    schema, Xm, y = _frame()
    ens = WeightedEnsemble([_catboost(schema, Xm, y, 3), _catboost(schema, Xm, y, 5)], [0.6, 0.4], "binary")
    model = export_onnx(ens, schema, "binary", [0, 1], metadata(schema, "binary", "y", "roc_auc", [0, 1], "t"))
    trees = [n for n in model.graph.node if n.op_type.startswith("TreeEnsemble")]
    assert len(trees) == 2
    for n in trees:
        names = {a.name for a in n.attribute}
        assert {"nodes_treeids", "nodes_featureids", "class_weights"} <= names, names
        assert not n.doc_string.startswith(deferred.MARK)
        assert n.input and n.output and n.name  # the node's own wiring survived the fill
    assert deferred.pending() == 0  # nothing held after the export
    # depth 3 and depth 5 trees: each node got its own model's attributes, not the other's
    import onnx

    from automl.export.catboost_node import catboost_tree_node

    def n_nodes(node):
        return len(next(a for a in node.attribute if a.name == "nodes_treeids").ints)

    own = [n_nodes(onnx.NodeProto.FromString(catboost_tree_node(m.steps[-1][1]).node)) for m in ens.members]
    assert own[0] != own[1] and [n_nodes(n) for n in trees] == own
    report = check_parity(model, ens, Xm, schema, "binary", 1e-5, 0)
    assert report["passed"] and report["max_diff"] < 1e-5


@pytest.mark.onnx
def test_a_failed_export_leaves_nothing_for_the_next():
    import onnx

    from automl.export import deferred
    from automl.export.contract import metadata
    from automl.export.onnx import check_parity, export_onnx

    schema, Xm, y = _frame()
    deferred.defer(onnx.NodeProto(), lambda node: None)  # what an export that failed half-way would leave
    pipe = _catboost(schema, Xm, y, 4)
    model = export_onnx(pipe, schema, "binary", [0, 1], metadata(schema, "binary", "y", "roc_auc", [0, 1], "t"))
    assert deferred.pending() == 0
    assert check_parity(model, pipe, Xm, schema, "binary", 1e-5, 0)["passed"]


@pytest.mark.onnx
def test_parity_on_the_graphs_bytes_agrees_with_parity_on_the_graph():
    """A trial checks parity on the graph's bytes after dropping its Python copy (objective.export_check)."""
    from automl.export.onnx import check_parity, export_onnx

    schema, Xm, y = _frame()
    pipe = _catboost(schema, Xm, y, 4)
    model = export_onnx(pipe, schema, "binary", [0, 1], {})
    on_proto = check_parity(model, pipe, Xm, schema, "binary", 1e-5, 0)
    on_bytes = check_parity(model.SerializeToString(), pipe, Xm, schema, "binary", 1e-5, 0, labels=np.arange(2))
    assert on_bytes == on_proto and on_bytes["passed"]
    with pytest.raises(ValueError, match="class labels"):
        check_parity(model.SerializeToString(), pipe, Xm, schema, "binary", 1e-5, 0)


def test_the_node_cut_from_the_wire_format_is_the_parsed_models_node():
    """catboost_node walks protobuf's wire format instead of parsing the model: the node it cuts out, the
    opsets and the op type must be exactly what onnx's own parse of the same bytes gives, for a regressor
    (one node) and classifiers (a TreeEnsembleClassifier and a ZipMap)."""
    import onnx
    from catboost.utils import convert_to_onnx_object

    from automl.estimators import REGISTRY
    from automl.export.catboost_node import catboost_tree_node, tree_node

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4)).astype(np.float32)
    for task, y in (("regression", X[:, 0] + rng.normal(0, 0.1, 200)), ("binary", (X[:, 1] > 0).astype(int)),
                    ("multiclass", np.digitize(X[:, 2], [-0.5, 0.5]))):
        model = REGISTRY.get("catboost").build({"iterations": 20, "depth": 4}, task=task, seed=0).fit(X, y)
        parsed = convert_to_onnx_object(model)
        (want,) = [n for n in parsed.graph.node if n.op_type.startswith("TreeEnsemble")]
        for got in (tree_node(parsed.SerializeToString()), catboost_tree_node(model)):
            assert onnx.NodeProto.FromString(got.node) == want
            assert (got.op_type, got.domain) == (want.op_type, want.domain)
            assert got.opsets == {d.domain: d.version for d in parsed.opset_import}


def test_a_model_other_than_one_tree_node_is_refused_and_truncated_bytes_fail():
    import onnx
    from onnx import helper

    from automl.export.catboost_node import tree_node

    def model(nodes, inits=()):
        graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 2])],
                                  [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 1])], list(inits))
        return helper.make_model(graph).SerializeToString()

    tree = helper.make_node("TreeEnsembleRegressor", ["x"], ["y"], domain="ai.onnx.ml", n_targets=1)
    assert tree_node(model([tree])).op_type == "TreeEnsembleRegressor"
    with pytest.raises(NotImplementedError, match="expected one TreeEnsemble"):
        tree_node(model([tree, tree]))
    with pytest.raises(NotImplementedError, match="1 initializer"):
        tree_node(model([tree], [helper.make_tensor("w", onnx.TensorProto.FLOAT, [1], [1.0])]))
    with pytest.raises(NotImplementedError, match=r"\['Relu'\]"):
        tree_node(model([helper.make_node("Relu", ["x"], ["y"])]))
    with pytest.raises(ValueError, match="truncated"):
        tree_node(model([tree])[:-3])
