"""Conformal outputs appended to the exported graph (task.coverage): `interval` float32 [N,2] for a
regressor (label -+ q, or label -+ q * max(sigma(x), floor) with normalised widths, sigma computed by the
difficulty model's nodes inside the same graph) and `prediction_set` bool [N,C] for a classifier
(probabilities >= 1 - q, one q per class), plus the parity check of those outputs against the Python pipeline."""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnx
import pandas as pd
from onnx import TensorProto, helper

from automl.data.roles import Schema
from automl.errors import ParityError
from automl.evaluation.conformal import Conformal
from automl.export.contract import feeds_from_frame
from automl.export.onnx import run_in_chunks, session

DIFFICULTY = "difficulty_"  # prefix of the difficulty model's nodes, initializers and outputs in the graph


def merge_difficulty(g: onnx.GraphProto, out: onnx.ModelProto, difficulty: onnx.ModelProto) -> str:
    """The difficulty model's nodes added to `out` (graph `g`), reading the same raw inputs; returns the
    name of its sigma(x) output [N]."""
    part = onnx.compose.add_prefix(difficulty, DIFFICULTY, rename_inputs=False, rename_outputs=True)
    own = {i.name for i in g.input}
    missing = [i.name for i in part.graph.input if i.name not in own]
    if missing:
        raise ValueError(f"the difficulty model reads inputs the model does not have: {missing}")
    g.node.extend(part.graph.node)
    g.initializer.extend(part.graph.initializer)
    out.functions.extend(part.functions)
    opsets = {d.domain: d.version for d in out.opset_import}
    for d in part.opset_import:
        if opsets.get(d.domain, 0) < d.version:
            opsets[d.domain] = d.version
    del out.opset_import[:]
    out.opset_import.extend(helper.make_opsetid(d, v) for d, v in sorted(opsets.items()))
    out.ir_version = max(out.ir_version, part.ir_version)
    return DIFFICULTY + "label"


def add_conformal(model: onnx.ModelProto, conf: Conformal,
                  difficulty: onnx.ModelProto | None = None) -> onnx.ModelProto:
    """A copy of `model` with the conformal output, and `conformal` in its metadata_props. `difficulty`: the
    graph of the difficulty model (normalised intervals), same inputs, output `label` = sigma(x)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    if conf.task == "regression":
        q = np.float32(conf.qhat[0])
        g.initializer.extend([helper.make_tensor("conformal_q", TensorProto.FLOAT, [], [float(q)]),
                              helper.make_tensor("conformal_col", TensorProto.INT64, [2], [-1, 1])])
        half = "conformal_q"
        if conf.scale == "normalised":
            if difficulty is None:
                raise ValueError("normalised conformal intervals need the difficulty model's graph")
            sigma = merge_difficulty(g, out, difficulty)
            g.initializer.append(helper.make_tensor("conformal_sigma_floor", TensorProto.FLOAT, [],
                                                    [float(np.float32(conf.sigma_floor))]))
            g.node.extend([
                helper.make_node("Reshape", [sigma, "conformal_col"], ["conformal_sigma_col"],
                                 name="automl_conformal_sigma_col"),
                helper.make_node("Max", ["conformal_sigma_col", "conformal_sigma_floor"], ["conformal_sigma"],
                                 name="automl_conformal_sigma"),
                helper.make_node("Mul", ["conformal_sigma", "conformal_q"], ["conformal_half"],
                                 name="automl_conformal_half")])
            half = "conformal_half"
        g.node.extend([
            helper.make_node("Reshape", ["label", "conformal_col"], ["conformal_pred"], name="automl_conformal_col"),
            helper.make_node("Sub", ["conformal_pred", half], ["conformal_lo"], name="automl_conformal_lo"),
            helper.make_node("Add", ["conformal_pred", half], ["conformal_hi"], name="automl_conformal_hi"),
            helper.make_node("Concat", ["conformal_lo", "conformal_hi"], ["interval"], axis=1,
                             name="automl_interval"),
        ])
        g.output.append(helper.make_tensor_value_info("interval", TensorProto.FLOAT, [None, 2]))
    else:
        thr = conf.thresholds()
        g.initializer.append(helper.make_tensor("conformal_threshold", TensorProto.FLOAT, [len(thr)],
                                                [float(v) for v in thr]))
        g.node.append(helper.make_node("GreaterOrEqual", ["probabilities", "conformal_threshold"],
                                       ["prediction_set"], name="automl_prediction_set"))
        g.output.append(helper.make_tensor_value_info("prediction_set", TensorProto.BOOL, [None, len(thr)]))
    props = {p.key: p.value for p in out.metadata_props}
    props["conformal"] = json.dumps(conf.to_json())
    helper.set_model_props(out, props)
    onnx.checker.check_model(out)
    return out


def python_output(conf: Conformal, pred: np.ndarray, sigma: np.ndarray | None = None) -> np.ndarray:
    """What the graph's conformal output is for the Python pipeline's predictions (or probabilities);
    `sigma`: the difficulty model's predictions on the same rows (normalised intervals)."""
    return conf.interval(pred, sigma) if conf.task == "regression" else conf.prediction_set(pred)


def difficulty_of(difficulty: Any, X: pd.DataFrame) -> np.ndarray | None:
    """The fitted difficulty pipeline's sigma(x) on X (None without one)."""
    return None if difficulty is None else np.asarray(difficulty.predict(X), dtype=np.float64).reshape(-1)


def graph_output(model: onnx.ModelProto, X: pd.DataFrame, schema: Schema, fit_rows: int) -> dict[str, np.ndarray]:
    sess = session(model.SerializeToString())
    return run_in_chunks(sess, feeds_from_frame(X, schema.to_json()), fit_rows)


def check_conformal_parity(model: onnx.ModelProto, pipeline: Any, X: pd.DataFrame, schema: Schema,
                           conf: Conformal, tol: float, fit_rows: int = 0, difficulty: Any = None) -> dict[str, Any]:
    """onnxruntime's `interval` / `prediction_set` against the same rule applied to the Python pipeline's
    output (and the Python difficulty pipeline's sigma(x)); a set membership within float noise of its
    threshold is not counted. Raises ParityError."""
    outs = graph_output(model, X, schema, fit_rows)
    if conf.task == "regression":
        py = python_output(conf, np.asarray(pipeline.predict(X), dtype=np.float64).reshape(-1),
                           difficulty_of(difficulty, X) if conf.scale == "normalised" else None)
        ox = np.asarray(outs["interval"], dtype=np.float64)
        scale = np.maximum(np.maximum(np.abs(py), np.mean(np.abs(py))), 1.0)
        diff = float((np.abs(ox - py) / scale).max()) if len(py) else 0.0
        report = {"output": "interval", "rows": len(X), "max_diff": diff, "kind": "relative", "tolerance": tol,
                  "scale": conf.scale}
        ok = diff <= tol
    else:
        proba = np.asarray(pipeline.predict_proba(X), dtype=np.float64)
        py = python_output(conf, proba)
        ox = np.asarray(outs["prediction_set"], dtype=bool)
        clear = np.abs(proba - conf.thresholds()[None, :]) > 2 * tol
        mismatches = int(((py != ox) & clear).sum())
        report = {"output": "prediction_set", "rows": len(X), "mismatches": mismatches,
                  "memberships_checked": int(clear.sum())}
        ok = mismatches == 0
    report["passed"] = bool(ok)
    if not ok:
        raise ParityError(f"ONNX parity failed on the conformal output: {report}")
    return report
