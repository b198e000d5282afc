"""skl2onnx converters for the feature-synthesis steps (automl/features/synthesis.py).

Each converter repeats the numpy computation op for op (same dtype, same order), so the graph and
the Python pipeline agree exactly: float32 arithmetic, float64 calendar maths from epoch seconds,
and word/character counts with onnxruntime's Tokenizer + RegexFullMatch (opset 20).
"""
from __future__ import annotations

import re
import string

from onnx import TensorProto
from skl2onnx import update_registered_converter
from skl2onnx.common.data_types import FloatTensorType

from automl.features import synthesis as syn
from automl.features.text import TextSVD

_NAN = float("nan")


class _G:
    """A tiny graph builder over skl2onnx's scope/container (unique names, constant initialisers)."""
    def __init__(self, scope, container):
        self.scope, self.container = scope, container

    def const(self, value, dtype=TensorProto.DOUBLE, shape=(), name="c"):
        n = self.scope.get_unique_variable_name(name)
        vals = value if isinstance(value, list) else [value]
        self.container.add_initializer(n, dtype, list(shape), vals)
        return n

    def op(self, op_type, inputs, out=None, domain=None, **attrs):
        out = out or self.scope.get_unique_variable_name(op_type.lower())
        kw = {"op_domain": domain, "op_version": 1} if domain else {}
        self.container.add_node(op_type, list(inputs), [out], name=self.scope.get_unique_operator_name(op_type),
                                **kw, **attrs)
        return out

    def column(self, x, j):
        return self.op("Gather", [x, self.const([j], TensorProto.INT64, [1], "idx")], axis=1)

    def floordiv(self, a, b):
        return self.op("Floor", [self.op("Div", [a, self.const(float(b))])])


def _shape_dfs(operator):
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = FloatTensorType([n, len(operator.raw_operator.features_)])


def _arithmetic(g: _G, a, b, prim):
    if prim != "divide_numeric":
        r = g.op({"add_numeric": "Add", "subtract_numeric": "Sub", "multiply_numeric": "Mul"}[prim], [a, b])
    else:
        zero = g.op("Equal", [b, g.const(0.0, TensorProto.FLOAT)])
        r = g.op("Where", [zero, g.const(_NAN, TensorProto.FLOAT), g.op("Div", [a, b])])
    return g.op("Where", [g.op("IsInf", [r]), g.const(_NAN, TensorProto.FLOAT), r])


def _datetime(g: _G, s, prim):
    days = g.floordiv(s, 86400.0)
    mul = lambda a, k: g.op("Mul", [a, g.const(float(k))])  # noqa: E731
    add = lambda a, b: g.op("Add", [a, b])  # noqa: E731
    sub = lambda a, b: g.op("Sub", [a, b])  # noqa: E731
    if prim in ("year", "month", "day", "day_of_year"):
        z = add(days, g.const(719468.0))
        era = g.floordiv(z, 146097.0)
        doe = sub(z, mul(era, 146097))
        t = add(sub(doe, g.floordiv(doe, 1460.0)), g.floordiv(doe, 36524.0))
        yoe = g.floordiv(sub(t, g.floordiv(doe, 146096.0)), 365.0)
        doy = sub(doe, sub(add(mul(yoe, 365), g.floordiv(yoe, 4.0)), g.floordiv(yoe, 100.0)))
        mp = g.floordiv(add(mul(doy, 5), g.const(2.0)), 153.0)
        late = g.op("Cast", [g.op("GreaterOrEqual", [mp, g.const(10.0)])], to=TensorProto.DOUBLE)
        if prim == "day":
            return add(sub(doy, g.floordiv(add(mul(mp, 153), g.const(2.0)), 5.0)), g.const(1.0))
        if prim == "month":
            return sub(add(mp, g.const(3.0)), mul(late, 12))
        y = add(add(yoe, mul(era, 400)), late)
        if prim == "year":
            return y
        yp = sub(y, g.const(1.0))
        era2 = g.floordiv(yp, 400.0)
        yoe2 = sub(yp, mul(era2, 400))
        doe2 = add(sub(add(mul(yoe2, 365), g.floordiv(yoe2, 4.0)), g.floordiv(yoe2, 100.0)), g.const(306.0))
        jan1 = sub(add(mul(era2, 146097), doe2), g.const(719468.0))
        return add(sub(days, jan1), g.const(1.0))
    if prim == "weekday":
        w = add(days, g.const(3.0))
        return sub(w, mul(g.floordiv(w, 7.0), 7))
    sod = sub(s, mul(days, 86400))
    hour = g.floordiv(sod, 3600.0)
    return hour if prim == "hour" else g.floordiv(sub(sod, mul(hour, 3600)), 60.0)


_PUNCT_ONLY = "[" + re.escape(string.punctuation) + "]*"


def _text(g: _G, col, prim):
    """Tokens [N,1,T] -> count the real ones -> [N,1] float (an empty string gives 0)."""
    if prim == "num_words":
        tok = g.op("Tokenizer", [col], domain="com.microsoft", mark=0, pad_value="!", mincharnum=1,
                   tokenexp="[^ \n\t]+")
        keep = g.op("Not", [g.op("RegexFullMatch", [tok], pattern=_PUNCT_ONLY)])
    else:
        pad = "\x01"
        tok = g.op("Tokenizer", [col], domain="com.microsoft", mark=0, pad_value=pad, mincharnum=1,
                   tokenexp="(?s).")
        # a real \x01 character is a character too: count tokens equal to pad only where they are padding
        keep = g.op("Not", [g.op("Equal", [tok, g.const([pad.encode()], TensorProto.STRING, [], "pad")])])
    n = g.op("ReduceSum", [g.op("Cast", [keep], to=TensorProto.FLOAT), g.const([2], TensorProto.INT64, [1], "ax")],
             keepdims=0)
    return n


def _convert_dfs(scope, operator, container):
    op = operator.raw_operator
    g = _G(scope, container)
    x = operator.inputs[0].full_name
    out = operator.outputs[0].full_name
    cols = []
    for prim, idx in op.features_:
        if op.kind == "numeric":
            cols.append(_arithmetic(g, g.column(x, idx[0]), g.column(x, idx[1]), prim))
        elif op.kind == "datetime":
            cols.append(g.op("Cast", [_datetime(g, g.column(x, idx[0]), prim)], to=TensorProto.FLOAT))
        else:
            cols.append(_text(g, g.column(x, idx[0]), prim))
    if not cols:
        # no feature survived: an empty [N,0] float block
        shape = g.op("Shape", [x])
        n = g.op("Slice", [shape, g.const([0], TensorProto.INT64, [1]), g.const([1], TensorProto.INT64, [1])])
        dims = g.op("Concat", [n, g.const([0], TensorProto.INT64, [1])], axis=0)
        g.op("ConstantOfShape", [dims], out=out, value=_float_tensor())
        return
    g.op("Concat", cols, out=out, axis=1) if len(cols) > 1 else g.op("Identity", cols, out=out)


def _float_tensor():
    from onnx import helper

    return helper.make_tensor("v", TensorProto.FLOAT, [1], [0.0])


def _shape_svd(operator):
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = FloatTensorType([n, operator.raw_operator.components_.shape[0]])


def _convert_svd(scope, operator, container):
    """X @ components_.T, as skl2onnx does for TruncatedSVD (whose converter keys on the class name)."""
    comp = operator.raw_operator.components_.T.astype("float32")
    g = _G(scope, container)
    w = g.const(comp.ravel().tolist(), TensorProto.FLOAT, list(comp.shape), "svd_w")
    g.op("MatMul", [operator.inputs[0].full_name, w], out=operator.outputs[0].full_name)


def _shape_selector(operator):
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = operator.inputs[0].type.__class__([n, len(operator.raw_operator.indices_)])


def _convert_selector(scope, operator, container):
    g = _G(scope, container)
    idx = g.const([int(i) for i in operator.raw_operator.indices_], TensorProto.INT64,
                  [len(operator.raw_operator.indices_)], "keep")
    g.op("Gather", [operator.inputs[0].full_name, idx], out=operator.outputs[0].full_name, axis=1)


def _parser_dfs(scope, model, inputs, custom_parsers=None):
    """The output is float32 whatever the input (double epoch seconds, strings): declare it so, or the
    steps after it would guess their types from the input."""
    op = scope.declare_local_operator("AutomlDFSFeatures", model)
    op.inputs = inputs
    op.outputs.append(scope.declare_local_variable("synthesised", FloatTensorType()))
    return op.outputs


def register() -> None:
    update_registered_converter(syn.DFSFeatures, "AutomlDFSFeatures", _shape_dfs, _convert_dfs, parser=_parser_dfs)

    update_registered_converter(TextSVD, "AutomlTextSVD", _shape_svd, _convert_svd)
    update_registered_converter(syn.RelevanceSelector, "AutomlRelevanceSelector", _shape_selector, _convert_selector)
