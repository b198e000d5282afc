"""Conformal outputs appended to the exported graph (task.coverage): `interval` float32 [N,2] for a
regressor (label - q, label + q) and `prediction_set` bool [N,C] for a classifier (probabilities >= 1 - q,
one q per class), plus the parity check of those outputs against the Python pipeline."""
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


def add_conformal(model: onnx.ModelProto, conf: Conformal) -> onnx.ModelProto:
    """A copy of `model` with the conformal output, and `conformal` in its metadata_props."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    if conf.task == "regression":
        q = np.float32(conf.qhat[0])
        g.initializer.extend([helper.make_tensor("conformal_q", TensorProto.FLOAT, [], [float(q)]),
                              helper.make_tensor("conformal_col", TensorProto.INT64, [2], [-1, 1])])
        g.node.extend([
            helper.make_node("Reshape", ["label", "conformal_col"], ["conformal_pred"], name="automl_conformal_col"),
            helper.make_node("Sub", ["conformal_pred", "conformal_q"], ["conformal_lo"], name="automl_conformal_lo"),
            helper.make_node("Add", ["conformal_pred", "conformal_q"], ["conformal_hi"], name="automl_conformal_hi"),
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


def python_output(conf: Conformal, pred: np.ndarray) -> np.ndarray:
    """What the graph's conformal output is for the Python pipeline's predictions (or probabilities)."""
    return conf.interval(pred) if conf.task == "regression" else conf.prediction_set(pred)


def graph_output(model: onnx.ModelProto, X: pd.DataFrame, schema: Schema, fit_rows: int) -> dict[str, np.ndarray]:
    sess = session(model.SerializeToString())
    return run_in_chunks(sess, feeds_from_frame(X, schema.to_json()), fit_rows)


def check_conformal_parity(model: onnx.ModelProto, pipeline: Any, X: pd.DataFrame, schema: Schema,
                           conf: Conformal, tol: float, fit_rows: int = 0) -> dict[str, Any]:
    """onnxruntime's `interval` / `prediction_set` against the same rule applied to the Python pipeline's
    output; a set membership within float noise of its threshold is not counted. Raises ParityError."""
    outs = graph_output(model, X, schema, fit_rows)
    if conf.task == "regression":
        py = python_output(conf, np.asarray(pipeline.predict(X), dtype=np.float64).reshape(-1))
        ox = np.asarray(outs["interval"], dtype=np.float64)
        scale = np.maximum(np.maximum(np.abs(py), np.mean(np.abs(py))), 1.0)
        diff = float((np.abs(ox - py) / scale).max()) if len(py) else 0.0
        report = {"output": "interval", "rows": len(X), "max_diff": diff, "kind": "relative", "tolerance": tol}
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
