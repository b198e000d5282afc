"""A calibrator (automl/evaluation/calibration.py) as graph nodes between the model's probabilities and
the contract's `probabilities` output, so `label`, `prediction_set` and every consumer see calibrated ones."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from automl.evaluation.calibration import EPS, Calibrator, isotonic_segments

RAW = "uncalibrated_probabilities"


def _const(g: onnx.GraphProto, name: str, values: np.ndarray | float, dims: list[int] | None = None) -> str:
    arr = np.asarray(values, dtype=np.float32).reshape(-1)
    g.initializer.append(helper.make_tensor(name, TensorProto.FLOAT, dims if dims is not None else [len(arr)],
                                            [float(v) for v in arr]))
    return name


def add_calibration(model: onnx.ModelProto, cal: Calibrator | None) -> onnx.ModelProto:
    """`model` (before the contract's outputs are added: it outputs `probabilities`) with the calibrator's
    nodes after its probabilities; unchanged without one."""
    if cal is None or cal.method == "none":
        return model
    g = model.graph
    for node in g.node:
        for i, name in enumerate(node.output):
            if name == "probabilities":
                node.output[i] = RAW
    for o in g.output:
        if o.name == "probabilities":
            o.name = RAW
    add = g.node.append
    if cal.method == "temperature":
        lo, hi = _const(g, "calib_eps", EPS, []), _const(g, "calib_one", 1.0, [])
        add(helper.make_node("Clip", [RAW, lo, hi], ["calib_clip"], name="calib_clip"))
        add(helper.make_node("Log", ["calib_clip"], ["calib_log"], name="calib_log"))
        add(helper.make_node("Mul", ["calib_log", _const(g, "calib_a", cal.a, [])], ["calib_z"], name="calib_scale"))
        add(helper.make_node("Softmax", ["calib_z"], ["probabilities"], axis=1, name="calib_softmax"))
    else:
        g.initializer.append(helper.make_tensor("calib_col1", TensorProto.INT64, [1], [1]))
        add(helper.make_node("Gather", [RAW, "calib_col1"], ["calib_p1"], axis=1, name="calib_p1"))
        one = _const(g, "calib_one", 1.0, [])
        if cal.method == "sigmoid":
            lo, hi = _const(g, "calib_eps", EPS, []), _const(g, "calib_1m_eps", 1 - EPS, [])
            add(helper.make_node("Clip", ["calib_p1", lo, hi], ["calib_c"], name="calib_clip"))
            add(helper.make_node("Sub", [one, "calib_c"], ["calib_1mc"], name="calib_1mc"))
            add(helper.make_node("Div", ["calib_c", "calib_1mc"], ["calib_odds"], name="calib_odds"))
            add(helper.make_node("Log", ["calib_odds"], ["calib_logit"], name="calib_logit"))
            add(helper.make_node("Mul", ["calib_logit", _const(g, "calib_a", cal.a, [])], ["calib_ax"],
                                 name="calib_mul"))
            add(helper.make_node("Add", ["calib_ax", _const(g, "calib_b", cal.b, [])], ["calib_lin"],
                                 name="calib_add"))
            add(helper.make_node("Sigmoid", ["calib_lin"], ["calib_q"], name="calib_sigmoid"))
        else:  # isotonic: y0 + sum_k slope_k * (clip(x, lo_k, hi_k) - lo_k)
            lo_k, hi_k, slope, y0 = isotonic_segments(cal)
            add(helper.make_node("Max", ["calib_p1", _const(g, "calib_lo", lo_k)], ["calib_max"], name="calib_max"))
            add(helper.make_node("Min", ["calib_max", _const(g, "calib_hi", hi_k)], ["calib_min"], name="calib_min"))
            add(helper.make_node("Sub", ["calib_min", "calib_lo"], ["calib_dx"], name="calib_dx"))
            add(helper.make_node("Mul", ["calib_dx", _const(g, "calib_slope", slope)], ["calib_dy"], name="calib_dy"))
            g.initializer.append(helper.make_tensor("calib_axis", TensorProto.INT64, [1], [1]))
            add(helper.make_node("ReduceSum", ["calib_dy", "calib_axis"], ["calib_sum"], keepdims=1, name="calib_sum"))
            add(helper.make_node("Add", ["calib_sum", _const(g, "calib_y0", y0, [])], ["calib_q"], name="calib_y0"))
        add(helper.make_node("Sub", [one, "calib_q"], ["calib_q0"], name="calib_q0"))
        add(helper.make_node("Concat", ["calib_q0", "calib_q"], ["probabilities"], axis=1, name="calib_concat"))
    g.output.append(helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, None]))
    return model
