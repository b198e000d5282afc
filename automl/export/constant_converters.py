"""skl2onnx converters for the baseline's graph: a constant row per input row.

The baseline (DummyClassifier / DummyRegressor) reads one raw column through RowsOnly
(automl/preprocessing/steps.py), whose node is only the number of rows as a [N, 1] column of zeros; the
estimator's node tiles its class priors or mean to N rows.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from onnx import TensorProto, helper
from skl2onnx import update_registered_converter
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType

from automl.preprocessing.steps import RowsOnly


def _batch_size(scope, container, x: str) -> str:
    """A [1] int64 tensor: the number of rows of x (any element type)."""
    shape = scope.get_unique_variable_name("shape")
    container.add_node("Shape", [x], [shape], name=scope.get_unique_operator_name("Shape"))
    n = scope.get_unique_variable_name("n")
    zero = scope.get_unique_variable_name("zero")
    one = scope.get_unique_variable_name("one")
    container.add_initializer(zero, TensorProto.INT64, [1], [0])
    container.add_initializer(one, TensorProto.INT64, [1], [1])
    container.add_node("Slice", [shape, zero, one], [n], name=scope.get_unique_operator_name("Slice"))
    return n


def _rows_like(scope, container, x, row: np.ndarray) -> str:
    """Tile a constant row to [N, k] where N is the batch size of x."""
    const = scope.get_unique_variable_name("row")
    container.add_initializer(const, TensorProto.FLOAT, [1, row.size], row.astype(np.float32).ravel().tolist())
    n = _batch_size(scope, container, x)
    k = scope.get_unique_variable_name("k")
    container.add_initializer(k, TensorProto.INT64, [1], [row.size])
    target = scope.get_unique_variable_name("target_shape")
    container.add_node("Concat", [n, k], [target], axis=0, name=scope.get_unique_operator_name("Concat"))
    out = scope.get_unique_variable_name("tiled")
    container.add_node("Expand", [const, target], [out], name=scope.get_unique_operator_name("Expand"))
    return out


def _shape_rows_only(operator):
    operator.outputs[0].type = FloatTensorType([operator.inputs[0].get_first_dimension(), 1])


def _convert_rows_only(scope, operator, container):
    n = _batch_size(scope, container, operator.inputs[0].full_name)
    one = scope.get_unique_variable_name("width")
    container.add_initializer(one, TensorProto.INT64, [1], [1])
    target = scope.get_unique_variable_name("zeros_shape")
    container.add_node("Concat", [n, one], [target], axis=0, name=scope.get_unique_operator_name("Concat"))
    container.add_node("ConstantOfShape", [target], [operator.outputs[0].full_name],
                       value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]),
                       name=scope.get_unique_operator_name("ConstantOfShape"))


def _shape_dummy_classifier(operator):
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = Int64TensorType([n])
    operator.outputs[1].type = FloatTensorType([n, len(operator.raw_operator.classes_)])


def _shape_dummy_regressor(operator):
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = FloatTensorType([n, 1])


def _convert_dummy_classifier(scope, operator, container):
    op = operator.raw_operator
    prior = np.asarray(op.class_prior_, dtype=np.float32)
    probs = _rows_like(scope, container, operator.inputs[0].full_name, prior)
    container.add_node("Identity", [probs], [operator.outputs[1].full_name], name=scope.get_unique_operator_name("Id"))
    container.add_node("ArgMax", [probs], [operator.outputs[0].full_name], axis=1, keepdims=0,
                       name=scope.get_unique_operator_name("ArgMax"))


def _convert_dummy_regressor(scope, operator, container):
    const = np.asarray(operator.raw_operator.constant_, dtype=np.float32).reshape(-1)
    out = _rows_like(scope, container, operator.inputs[0].full_name, const)
    container.add_node("Identity", [out], [operator.outputs[0].full_name], name=scope.get_unique_operator_name("Id"))


def register(classifier_parser: Callable[..., Any]) -> None:
    """`classifier_parser`: the engine's parser for classifiers with outputs label [N] and probabilities [N, C]."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    update_registered_converter(RowsOnly, "AutomlRowsOnly", _shape_rows_only, _convert_rows_only)
    update_registered_converter(DummyClassifier, "AutomlDummyClassifier", _shape_dummy_classifier,
                                _convert_dummy_classifier, parser=classifier_parser,
                                options={"zipmap": [False, True], "nocl": [True, False]})
    update_registered_converter(DummyRegressor, "AutomlDummyRegressor", _shape_dummy_regressor,
                                _convert_dummy_regressor)
