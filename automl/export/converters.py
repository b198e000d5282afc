"""skl2onnx converters for what it does not know: the engine's own steps and CatBoost (the baseline's:
constant_converters.py).

Registered once, explicitly, by `register_converters()` (called by automl/export/onnx.py).
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from typing import Any

import numpy as np
from onnx import TensorProto
from skl2onnx import update_registered_converter
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType

from automl.estimators.hgb_float32 import Float32HGBClassifier, Float32HGBRegressor
from automl.estimators.knn_tiefree import TieFreeKNeighborsClassifier, TieFreeKNeighborsRegressor
from automl.export.catboost_node import catboost_tree_node
from automl.export.constant_converters import register as register_constant_converters
from automl.export.deferred import defer
from automl.export.feature_converters import register as register_feature_converters
from automl.export.forest_onnx import register_forest_converters
from automl.preprocessing.steps import RARE, Float32Cast, NaNIndicator, OutlierClipper, RareGrouper, SkewLog

_done = False
_libraries: set[str] = set()  # boosting libraries whose converters are registered


# --- NaNIndicator: IsNaN -> Cast(float) -----------------------------------------------------------
def _shape_same_width_float(operator):
    n = operator.inputs[0].get_first_dimension()
    width = operator.inputs[0].get_second_dimension()
    operator.outputs[0].type = FloatTensorType([n, width])


def _convert_nan_indicator(scope, operator, container):
    isnan = scope.get_unique_variable_name("isnan")
    container.add_node("IsNaN", [operator.inputs[0].full_name], [isnan], name=scope.get_unique_operator_name("IsNaN"))
    container.add_node("Cast", [isnan], [operator.outputs[0].full_name], to=TensorProto.FLOAT,
                       name=scope.get_unique_operator_name("Cast"))


# --- Float32Cast: Cast(float) ----------------------------------------------------------------------
def _convert_float32_cast(scope, operator, container):
    container.add_node("Cast", [operator.inputs[0].full_name], [operator.outputs[0].full_name],
                       to=TensorProto.FLOAT, name=scope.get_unique_operator_name("Cast"))


# --- RareGrouper: per column LabelEncoder(level -> level, default RARE) ------------------------------
def _shape_rare(operator):
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = StringTensorType([n, len(operator.raw_operator.levels_)])


def _convert_rare(scope, operator, container):
    op = operator.raw_operator
    x = operator.inputs[0].full_name
    cols = []
    for j, levels in enumerate(op.levels_):
        starts = scope.get_unique_variable_name("starts")
        ends = scope.get_unique_variable_name("ends")
        axes = scope.get_unique_variable_name("axes")
        container.add_initializer(starts, TensorProto.INT64, [1], [j])
        container.add_initializer(ends, TensorProto.INT64, [1], [j + 1])
        container.add_initializer(axes, TensorProto.INT64, [1], [1])
        col = scope.get_unique_variable_name(f"col{j}")
        container.add_node("Slice", [x, starts, ends, axes], [col], name=scope.get_unique_operator_name("Slice"))
        mapped = scope.get_unique_variable_name(f"mapped{j}")
        keys = levels or [RARE]
        container.add_node("LabelEncoder", [col], [mapped], op_domain="ai.onnx.ml", op_version=2,
                           keys_strings=keys, values_strings=keys, default_string=RARE,
                           name=scope.get_unique_operator_name("LabelEncoder"))
        cols.append(mapped)
    if len(cols) == 1:
        container.add_node("Identity", cols, [operator.outputs[0].full_name],
                           name=scope.get_unique_operator_name("Identity"))
    else:
        container.add_node("Concat", cols, [operator.outputs[0].full_name], axis=1,
                           name=scope.get_unique_operator_name("Concat"))


# --- OutlierClipper: Where(x > hi, hi, Where(x < lo, lo, x)); NaN compares false and passes -----------
def _convert_clipper(scope, operator, container):
    op = operator.raw_operator
    x = operator.inputs[0].full_name
    lo, hi = scope.get_unique_variable_name("lo"), scope.get_unique_variable_name("hi")
    container.add_initializer(lo, TensorProto.FLOAT, [1, op.n_features_in_], op.lower_.tolist())
    container.add_initializer(hi, TensorProto.FLOAT, [1, op.n_features_in_], op.upper_.tolist())
    gt, lt, mid = (scope.get_unique_variable_name(n) for n in ("gt", "lt", "mid"))
    container.add_node("Greater", [x, hi], [gt], name=scope.get_unique_operator_name("Greater"))
    container.add_node("Where", [gt, hi, x], [mid], name=scope.get_unique_operator_name("Where"))
    container.add_node("Less", [mid, lo], [lt], name=scope.get_unique_operator_name("Less"))
    container.add_node("Where", [lt, lo, mid], [operator.outputs[0].full_name],
                       name=scope.get_unique_operator_name("Where"))


# --- SkewLog: Where(mask, Log(1 + Where(x < 0, 0, x)), x) --------------------------------------------
def _convert_skewlog(scope, operator, container):
    op = operator.raw_operator
    x = operator.inputs[0].full_name
    names = {n: scope.get_unique_variable_name(n) for n in ("zero", "one", "mask", "neg", "pos", "p1", "log")}
    container.add_initializer(names["zero"], TensorProto.FLOAT, [], [0.0])
    container.add_initializer(names["one"], TensorProto.FLOAT, [], [1.0])
    container.add_initializer(names["mask"], TensorProto.BOOL, [1, op.n_features_in_], op.mask_.tolist())
    container.add_node("Less", [x, names["zero"]], [names["neg"]], name=scope.get_unique_operator_name("Less"))
    container.add_node("Where", [names["neg"], names["zero"], x], [names["pos"]],
                       name=scope.get_unique_operator_name("Where"))
    container.add_node("Add", [names["pos"], names["one"]], [names["p1"]], name=scope.get_unique_operator_name("Add"))
    container.add_node("Log", [names["p1"]], [names["log"]], name=scope.get_unique_operator_name("Log"))
    container.add_node("Where", [names["mask"], names["log"], x], [operator.outputs[0].full_name],
                       name=scope.get_unique_operator_name("Where"))


# --- XGBoost binary: onnxmltools 1.16 can write base_score (a probability) where the margin belongs --
def _xgb_base_margin(model) -> float | None:
    import json
    import math

    cfg = json.loads(model.get_booster().save_config())
    if cfg["learner"]["objective"]["name"] != "binary:logistic":
        return None
    raw = str(cfg["learner"]["learner_model_param"]["base_score"]).strip("[]")
    p = float(raw)
    return math.log(p / (1 - p))


def _convert_xgboost_fixed(scope, operator, container):
    from onnx import helper
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost

    before = len(container.nodes)
    convert_xgboost(scope, operator, container)
    margin = _xgb_base_margin(operator.raw_operator)
    if margin is None:
        return
    for node in container.nodes[before:]:
        if node.op_type == "TreeEnsembleClassifier":
            for i, att in enumerate(node.attribute):
                if att.name == "base_values":
                    node.attribute[i].CopyFrom(helper.make_attribute("base_values", [margin]))


# --- Classifiers with converters of ours: outputs label [N] and probabilities [N, C] (no ZipMap) -----
def _parser_classifier(scope, model, inputs, custom_parsers=None):
    from skl2onnx._parse import _get_sklearn_operator_name

    op = scope.declare_local_operator(_get_sklearn_operator_name(type(model)), model)
    op.inputs = inputs
    op.outputs.append(scope.declare_local_variable("label", Int64TensorType()))
    op.outputs.append(scope.declare_local_variable("probabilities", FloatTensorType()))
    return op.outputs


# --- CatBoost: its own exporter's TreeEnsemble node, copied into the graph (compat.md P11) ----------
# The node's attributes are written only into the finished graph (automl/export/deferred.py): a 500-tree
# depth-8 model holds ~3M node entries (~50 MB per copy), and a single CatBoost's export peaked at 490 MB RSS
# with them present from the start. Until then the converter holds the node's serialized bytes, cut from
# catboost's export without parsing it (automl/export/catboost_node.py).
def _convert_catboost(scope, operator, container):
    raw = operator.raw_operator
    tree = catboost_tree_node(raw)
    outputs = [o.full_name for o in operator.outputs]
    name = scope.get_unique_operator_name("CatBoost")
    container.add_node(tree.op_type, [operator.inputs[0].full_name], outputs, op_domain=tree.domain,
                       op_version=tree.opsets.get(tree.domain), name=name)
    defer(container.nodes[-1], lambda final: _fill_catboost(final, tree.node))


def _fill_catboost(node: Any, tree: bytes) -> None:
    """The CatBoost node's attributes, from its serialized NodeProto (as Python lists, get_attribute_value,
    they would cost ~5x more)."""
    keep = (list(node.input), list(node.output), node.name, node.domain)
    node.ParseFromString(tree)  # parsed into the graph's own memory, nothing else tied to it
    del node.input[:], node.output[:]
    node.input.extend(keep[0])
    node.output.extend(keep[1])
    node.name, node.domain, node.doc_string = keep[2], keep[3], ""


def _snap_lightgbm_thresholds(node: dict) -> None:
    """LightGBM compares float32 features with float64 thresholds (x <= t); the graph compares in float32.
    The largest float32 not above t gives the very same decision for every float32 x (compat.md P8)."""
    if "split_feature" not in node:
        return
    t = node.get("threshold")
    if node.get("decision_type") == "<=" and isinstance(t, float) and np.isfinite(t):
        t32 = np.float32(t)
        if float(t32) > t:
            t32 = np.nextafter(t32, np.float32(-np.inf))
        node["threshold"] = float(t32)
    _snap_lightgbm_thresholds(node["left_child"])
    _snap_lightgbm_thresholds(node["right_child"])


def _convert_lightgbm_snapped(scope, operator, container):
    from onnxmltools.convert.lightgbm.operator_converters import LightGbm

    original = LightGbm.dump_booster_model

    def snapped(*args, **kwargs):
        dump, info = original(*args, **kwargs)
        for tree in dump["tree_info"]:
            _snap_lightgbm_thresholds(tree["tree_structure"])
        return dump, info

    LightGbm.dump_booster_model = snapped  # onnxmltools offers no hook for the thresholds it reads
    try:
        LightGbm.convert_lightgbm(scope, operator, container)
    finally:
        LightGbm.dump_booster_model = original


def register_converters(preload: Iterable[str] = ()) -> None:
    """The engine's converters, and those of each boosting library this process has loaded (it has, if it
    holds one of its models: building or unpickling one imports it) or that `preload` (family names) asks
    for. A library not loaded yet is registered by the next call after it is: a driver under a tight memory
    budget need not load LightGBM, XGBoost and onnxmltools (~7 MB every forked trial inherits), and no
    driver loads CatBoost (~19 MB: automl/stages/prepare.py)."""
    global _done
    for family in preload:
        if family in ("catboost", "lightgbm", "xgboost"):
            importlib.import_module(family)
    if not _done:
        _register_own()
        _done = True
    for lib, register in (("catboost", _register_catboost), ("lightgbm", _register_lightgbm),
                          ("xgboost", _register_xgboost)):
        if lib not in _libraries and lib in sys.modules:
            register()
            _libraries.add(lib)


def _register_own() -> None:
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )
    update_registered_converter(NaNIndicator, "AutomlNaNIndicator", _shape_same_width_float, _convert_nan_indicator)
    update_registered_converter(Float32Cast, "AutomlFloat32Cast", _shape_same_width_float, _convert_float32_cast)
    update_registered_converter(RareGrouper, "AutomlRareGrouper", _shape_rare, _convert_rare)
    update_registered_converter(OutlierClipper, "AutomlOutlierClipper", _shape_same_width_float, _convert_clipper)
    update_registered_converter(SkewLog, "AutomlSkewLog", _shape_same_width_float, _convert_skewlog)

    register_feature_converters()
    register_forest_converters()
    register_constant_converters(_parser_classifier)
    from skl2onnx.operator_converters.nearest_neighbours import (
        convert_nearest_neighbors_classifier,
        convert_nearest_neighbors_regressor,
    )
    from skl2onnx.operator_converters.random_forest import (
        convert_sklearn_random_forest_classifier,
        convert_sklearn_random_forest_regressor_converter,
    )
    from skl2onnx.shape_calculators.nearest_neighbours import calculate_sklearn_nearest_neighbours_regressor

    update_registered_converter(Float32HGBClassifier, "AutomlHGBClassifier", calculate_linear_classifier_output_shapes,
                                convert_sklearn_random_forest_classifier,
                                options={"zipmap": [False, True], "nocl": [True, False],
                                         "raw_scores": [True, False], "output_class_labels": [False, True]})
    update_registered_converter(Float32HGBRegressor, "AutomlHGBRegressor", calculate_linear_regressor_output_shapes,
                                convert_sklearn_random_forest_regressor_converter,
                                options={"raw_scores": [True, False]})

    update_registered_converter(TieFreeKNeighborsClassifier, "AutomlKNeighborsClassifier",
                                calculate_linear_classifier_output_shapes, convert_nearest_neighbors_classifier,
                                options={"zipmap": [False, True], "nocl": [True, False],
                                         "optim": [None, "cdist"], "output_class_labels": [False, True]})
    update_registered_converter(TieFreeKNeighborsRegressor, "AutomlKNeighborsRegressor",
                                calculate_sklearn_nearest_neighbours_regressor, convert_nearest_neighbors_regressor,
                                options={"optim": [None, "cdist"]})


def _register_catboost() -> None:
    from catboost import CatBoostClassifier, CatBoostRegressor
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    update_registered_converter(CatBoostClassifier, "AutomlCatBoostClassifier",
                                calculate_linear_classifier_output_shapes, _convert_catboost,
                                parser=_parser_classifier,
                                options={"zipmap": [False, True], "nocl": [True, False]})
    update_registered_converter(CatBoostRegressor, "AutomlCatBoostRegressor",
                                calculate_linear_regressor_output_shapes, _convert_catboost)


def _register_lightgbm() -> None:
    # LightGBM / XGBoost: onnxmltools' converters inside the skl2onnx graph (compat.md 2b). LightGBM needs
    # ai.onnx.ml opset 3 (P10), which onnx.py's TARGET_OPSET already gives; the zipmap option is for the parser.
    from lightgbm import LGBMClassifier, LGBMRegressor
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    update_registered_converter(LGBMClassifier, "AutomlLGBMClassifier", calculate_linear_classifier_output_shapes,
                                _convert_lightgbm_snapped, options={"zipmap": [False, True], "nocl": [True, False]})
    update_registered_converter(LGBMRegressor, "AutomlLGBMRegressor", calculate_linear_regressor_output_shapes,
                                _convert_lightgbm_snapped)


def _register_xgboost() -> None:
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )
    from xgboost import XGBClassifier, XGBRegressor

    update_registered_converter(XGBClassifier, "AutomlXGBClassifier", calculate_linear_classifier_output_shapes,
                                _convert_xgboost_fixed, options={"zipmap": [False, True], "nocl": [True, False]})
    update_registered_converter(XGBRegressor, "AutomlXGBRegressor", calculate_linear_regressor_output_shapes,
                                convert_xgboost)
