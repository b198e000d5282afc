"""Random forests and extra trees to ONNX without a Python object per tree node, attributes written last.

A forest grown to one row per leaf holds millions of nodes. skl2onnx's own converter appends each node's
fields to Python lists, then its graph and model assembly copies the finished node twice more, and an
ensemble copies each member's graph again: the export, not the fit, set the peak memory of runs that ship a
forest (benchmarks/RESULTS.md). This converter adds the ai.onnx.ml TreeEnsembleRegressor /
TreeEnsembleClassifier node without its node attributes and writes them, from the fitted trees' numpy arrays
and one attribute at a time, into the finished graph (automl/export/deferred.py). It emits what skl2onnx
emits (thresholds moved to the float32 value that splits float32 inputs as scikit-learn's float64 thresholds
do, leaf values divided by the number of trees, a classifier's leaf counts normalised, binary classifiers
scoring class 1 only), less the attributes whose absence means their default (hit rates of 1, missing values
going to the false branch) and less a multiclass leaf's zero weights (a sum gains nothing from them).
Anything else (several outputs, the decision-path options, inputs other than float32) goes to skl2onnx's
own converter.
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from automl.export.deferred import defer

_SKL2ONNX_OPTIONS = ("decision_path", "decision_leaf")


def _float32_threshold(t: np.ndarray) -> np.ndarray:
    """For each float64 threshold t, the float32 w with (float32 x <= t) <=> (x <= w): t rounded to float32,
    one float32 step down where rounding went up (skl2onnx's sklearn_threshold for float inputs)."""
    f = t.astype(np.float32)
    return np.where(f > t, np.nextafter(f, np.float32(-np.inf)), f)


def _nodes(trees: list[Any]) -> dict[str, np.ndarray]:
    """The per-node arrays of all trees, concatenated in tree order (each tree's nodes in sklearn's order)."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("tree", "node", "feature", "value", "true", "false",
                                                          "leaf")}
    for i, t in enumerate(trees):
        n = t.node_count
        leaf = t.children_left == -1
        parts["tree"].append(np.full(n, i, dtype=np.int64))
        parts["node"].append(np.arange(n, dtype=np.int64))
        parts["feature"].append(np.where(leaf, 0, t.feature).astype(np.int64))
        parts["value"].append(np.where(leaf, np.float32(0), _float32_threshold(t.threshold)))
        parts["true"].append(np.where(leaf, 0, t.children_left).astype(np.int64))
        parts["false"].append(np.where(leaf, 0, t.children_right).astype(np.int64))
        parts["leaf"].append(leaf)
    return {k: np.concatenate(v) for k, v in parts.items()}


def _attr(node: Any, name: str, values: np.ndarray | list[bytes], kind: str) -> None:
    from onnx import AttributeProto

    a = node.attribute.add()  # in place: appending a built attribute would copy it
    a.name = name
    if kind == "ints":
        a.type = AttributeProto.INTS
        a.ints.extend(np.asarray(values).tolist())
    elif kind == "floats":
        a.type = AttributeProto.FLOATS
        a.floats.extend(np.asarray(values, dtype=np.float32).tolist())
    else:
        a.type = AttributeProto.STRINGS
        a.strings.extend(values)


def _add_node_attributes(node: Any, nodes: dict[str, np.ndarray]) -> None:
    _attr(node, "nodes_treeids", nodes["tree"], "ints")
    _attr(node, "nodes_nodeids", nodes["node"], "ints")
    _attr(node, "nodes_featureids", nodes["feature"], "ints")
    branch, leaf = b"BRANCH_LEQ", b"LEAF"
    _attr(node, "nodes_modes", [leaf if x else branch for x in nodes["leaf"].tolist()], "strings")
    _attr(node, "nodes_values", nodes["value"], "floats")
    _attr(node, "nodes_truenodeids", nodes["true"], "ints")
    _attr(node, "nodes_falsenodeids", nodes["false"], "ints")


def _leaf_values(trees: list[Any]) -> np.ndarray:
    """value[leaf, class] (or [leaf, 0] for a regressor) of every leaf, in the order of `_nodes`."""
    return np.concatenate([t.value[t.children_left == -1, 0, :] for t in trees]).astype(np.float64)


def convertible(model: Any, operator: Any, container: Any) -> bool:
    """Whether this converter covers the forest (else skl2onnx's own converter runs)."""
    from skl2onnx.common.data_types import FloatTensorType

    if getattr(model, "n_outputs_", 0) != 1 or not hasattr(model, "estimators_"):
        return False
    if type(operator.inputs[0].type) is not FloatTensorType:
        return False
    options = container.get_options(model, {k: False for k in _SKL2ONNX_OPTIONS})
    return not any(options.get(k) for k in _SKL2ONNX_OPTIONS)


def convert_forest_regressor(scope: Any, operator: Any, container: Any) -> None:
    from skl2onnx.operator_converters.random_forest import convert_sklearn_random_forest_regressor_converter

    model = operator.raw_operator
    if not convertible(model, operator, container):
        convert_sklearn_random_forest_regressor_converter(scope, operator, container)
        return
    trees = [e.tree_ for e in model.estimators_]
    container.add_node("TreeEnsembleRegressor", operator.input_full_names, operator.outputs[0].full_name,
                       op_domain="ai.onnx.ml", op_version=1, name=scope.get_unique_operator_name(
                           "TreeEnsembleRegressor"), n_targets=1, post_transform="NONE")
    defer(container.nodes[-1], lambda final: _fill_regressor(final, trees))


def _fill_regressor(node: Any, trees: list[Any]) -> None:
    nodes = _nodes(trees)
    _add_node_attributes(node, nodes)
    weight = 1.0 / len(trees)
    is_leaf = nodes["leaf"]
    _attr(node, "target_treeids", nodes["tree"][is_leaf], "ints")
    _attr(node, "target_nodeids", nodes["node"][is_leaf], "ints")
    _attr(node, "target_ids", np.zeros(int(is_leaf.sum()), dtype=np.int64), "ints")
    _attr(node, "target_weights", _leaf_values(trees)[:, 0] * weight, "floats")


def convert_forest_classifier(scope: Any, operator: Any, container: Any) -> None:
    from skl2onnx.operator_converters.random_forest import convert_sklearn_random_forest_classifier

    model = operator.raw_operator
    if not convertible(model, operator, container) or container.get_options(model, {"raw_scores": False}).get(
            "raw_scores"):
        convert_sklearn_random_forest_classifier(scope, operator, container)
        return
    classes = list(model.classes_)
    if all(isinstance(c, (numbers.Real, bool, np.bool_)) for c in classes):
        labels: dict[str, Any] = {"classlabels_int64s": [int(c) for c in classes]}
    elif all(isinstance(c, str) for c in classes):
        labels = {"classlabels_strings": [str(c) for c in classes]}
    else:
        raise ValueError("Only string and integer class labels are allowed.")
    trees = [e.tree_ for e in model.estimators_]
    container.add_node("TreeEnsembleClassifier", operator.input_full_names,
                       [operator.outputs[0].full_name, operator.outputs[1].full_name],
                       op_domain="ai.onnx.ml", op_version=1, name=scope.get_unique_operator_name(
                           "TreeEnsembleClassifier"), post_transform="NONE", **labels)
    defer(container.nodes[-1], lambda final: _fill_classifier(final, trees, len(classes)))


def _fill_classifier(node: Any, trees: list[Any], n_classes: int) -> None:
    nodes = _nodes(trees)
    _add_node_attributes(node, nodes)
    counts = _leaf_values(trees)
    total = np.cumsum(counts, axis=1)[:, -1]  # summed left to right, as skl2onnx's sum() does
    weights = counts * ((1.0 / len(trees)) / np.where(total != 0, total, 1.0))[:, None]
    leaf_tree, leaf_node = nodes["tree"][nodes["leaf"]], nodes["node"][nodes["leaf"]]
    if n_classes == 2:  # onnxruntime scores class 1 and gives class 0 the rest
        tree_ids, node_ids = leaf_tree, leaf_node
        class_ids, class_weights = np.zeros(len(leaf_tree), dtype=np.int64), weights[:, 1]
    else:
        leaf_i, class_ids = np.nonzero(weights)
        tree_ids, node_ids, class_weights = leaf_tree[leaf_i], leaf_node[leaf_i], weights[leaf_i, class_ids]
    _attr(node, "class_treeids", tree_ids, "ints")
    _attr(node, "class_nodeids", node_ids, "ints")
    _attr(node, "class_ids", class_ids, "ints")
    _attr(node, "class_weights", class_weights, "floats")


def register_forest_converters() -> None:
    """Put this module's converters in place of skl2onnx's for the four forest classes (same options)."""
    from skl2onnx import update_registered_converter
    from skl2onnx.shape_calculators.ensemble_shapes import (
        calculate_tree_classifier_output_shapes,
        calculate_tree_regressor_output_shapes,
    )
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )

    clf_options = {"zipmap": [True, False, "columns"], "raw_scores": [True, False], "nocl": [True, False],
                   "output_class_labels": [False, True], "decision_path": [True, False],
                   "decision_leaf": [True, False]}
    reg_options = {"decision_path": [True, False], "decision_leaf": [True, False]}
    for cls, alias in ((RandomForestClassifier, "SklearnRandomForestClassifier"),
                       (ExtraTreesClassifier, "SklearnExtraTreesClassifier")):
        update_registered_converter(cls, alias, calculate_tree_classifier_output_shapes, convert_forest_classifier,
                                    options=clf_options)
    for cls, alias in ((RandomForestRegressor, "SklearnRandomForestRegressor"),
                       (ExtraTreesRegressor, "SklearnExtraTreesRegressor")):
        update_registered_converter(cls, alias, calculate_tree_regressor_output_shapes, convert_forest_regressor,
                                    options=reg_options)
