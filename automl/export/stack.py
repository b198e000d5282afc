"""A level-2 stacker (automl/stacking.py) as graph nodes over the members' outputs: Concat, MatMul, Add,
then Softmax for classification, so the stacked ensemble stays one graph."""
from __future__ import annotations

import onnx
from onnx import TensorProto, helper, numpy_helper

from automl.stacking import Stacker


def stack_nodes(member_outputs: list[str], stacker: Stacker, out: str) -> tuple[list[onnx.NodeProto],
                                                                                 list[onnx.TensorProto]]:
    """Nodes and initialisers from the members' outputs (probabilities [N, C], or predictions, reshaped
    to [N, 1]) to `out`: softmax(F @ coef + intercept), or F @ coef + intercept for regression."""
    nodes: list[onnx.NodeProto] = []
    inits = [numpy_helper.from_array(stacker.coef.astype("float32"), "stack_coef"),
             numpy_helper.from_array(stacker.intercept.astype("float32"), "stack_intercept")]
    cols = member_outputs
    if stacker.task == "regression":
        inits.append(helper.make_tensor("stack_col", TensorProto.INT64, [2], [-1, 1]))
        cols = []
        for i, name in enumerate(member_outputs):
            nodes.append(helper.make_node("Reshape", [name, "stack_col"], [f"stack_in{i}"], name=f"stack_col{i}"))
            cols.append(f"stack_in{i}")
    nodes.append(helper.make_node("Concat", cols, ["stack_features"], axis=1, name="stack_concat"))
    nodes.append(helper.make_node("MatMul", ["stack_features", "stack_coef"], ["stack_z0"], name="stack_matmul"))
    last = out if stacker.task == "regression" else "stack_z"
    nodes.append(helper.make_node("Add", ["stack_z0", "stack_intercept"], [last], name="stack_add"))
    if stacker.task != "regression":
        nodes.append(helper.make_node("Softmax", ["stack_z"], [out], axis=1, name="stack_softmax"))
    return nodes, inits
