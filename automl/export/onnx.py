"""Export the fitted inference pipeline as ONE ONNX graph and gate it on parity with Python.

Conversion settings live here only (compat.md section 4): opset {"": 21, "ai.onnx.ml": 3},
zipmap=False, explicit Float/String tensor types, labels derived from probabilities with one
tie rule (first max, as numpy.argmax).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx
import onnx.numpy_helper
import pandas as pd
from onnx import TensorProto, helper

from automl.data.roles import Schema
from automl.ensemble import WeightedEnsemble
from automl.errors import ParityError
from automl.evaluation.calibration import Calibrated
from automl.evaluation.metrics import labels_from_proba
from automl.export.calibration import add_calibration
from automl.export.contract import feeds_from_frame
from automl.export.deferred import fill_deferred, forget_deferred
from automl.export.stack import stack_nodes
from automl.memory import release_freed
from automl.preprocessing.imbalance import inference_estimators
from automl.stacking import StackedEnsemble

TARGET_OPSET = {"": 21, "ai.onnx.ml": 3}


def _rename_output(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
    for o in list(graph.output):
        if o.name == old:
            graph.output.remove(o)
    for vi in graph.value_info:
        if vi.name == old:
            vi.name = new


def load_converters() -> None:
    """skl2onnx and the engine's converters, registered in this process (once): by the driver before its
    trials fork (stages/prepare.py load_libraries), else by the first export."""
    from automl.export.converters import register_converters

    register_converters()


def _convert(pipeline: Any, schema: Schema, task: str) -> onnx.ModelProto:
    """skl2onnx conversion; outputs renamed to `probabilities` [N,C] or `prediction` [N,1]."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType

    load_converters()
    pipeline = _inference_pipeline(pipeline)
    kinds = {"numeric": FloatTensorType, "datetime": DoubleTensorType}
    inputs = [(c.name, kinds.get(c.role, StringTensorType)([None, 1])) for c in schema.features]
    est = pipeline.steps[-1][1]
    options: dict[int, dict[str, Any]] | None = {id(est): {"zipmap": False}} if task != "regression" else None
    options = {**(options or {}), **text_options(pipeline)}
    # model_optim=False: skl2onnx's identity-removal pass copies the whole graph once more (+130 MB peak on a
    # 100-tree ExtraTrees); onnxruntime removes those Identity nodes itself when it loads the graph
    model = convert_sklearn(pipeline, initial_types=inputs, target_opset=TARGET_OPSET, options=options or None,
                            model_optim=False)
    g = model.graph
    # skl2onnx sanitises input names (T.categ -> T_categ); the contract names inputs after the columns
    for inp, (name, _) in zip(g.input, inputs, strict=True):
        if inp.name != name:
            _rename_output(g, inp.name, name)
            inp.name = name
    out_names = [o.name for o in g.output]
    if task == "regression":
        _rename_output(g, out_names[0], "prediction")
        g.output.append(helper.make_tensor_value_info("prediction", TensorProto.FLOAT, [None, 1]))
    else:
        prob_name = next(n for n in out_names if "prob" in n)
        for n in out_names:
            if n != prob_name:
                _rename_output(g, n, "raw_label")  # labels come from probabilities (_finish)
        _rename_output(g, prob_name, "probabilities")
        g.output.append(helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, None]))
    return model


def _inference_pipelines(pipeline: Any) -> list[tuple[Any, float]]:
    """The pipelines the graph holds, with the weight of each in the average of their probabilities
    (predictions): fit-time-only wrappers (resampling, class weights: automl/preprocessing/imbalance.py)
    replaced by the fitted estimator they wrap; balanced bagging gives one pipeline per bag, sharing
    the fitted preprocessing, at equal weights; a WeightedEnsemble gives its members', weight x weight."""
    from sklearn.pipeline import Pipeline

    if isinstance(pipeline, WeightedEnsemble):
        return [(p, w * v) for m, w in zip(pipeline.members, pipeline.weights, strict=True)
                for p, v in _inference_pipelines(m)]
    name, last = pipeline.steps[-1]
    inner = inference_estimators(last)
    if len(inner) == 1 and inner[0] is last:
        return [(pipeline, 1.0)]
    return [(Pipeline([*pipeline.steps[:-1], (name, e)]), 1.0 / len(inner)) for e in inner]


def _inference_pipeline(pipeline: Any) -> Any:
    """The one pipeline the graph holds for a pipeline that is not averaged (see _inference_pipelines)."""
    parts = _inference_pipelines(pipeline)
    if len(parts) != 1:
        raise ValueError(f"{len(parts)} pipelines are averaged: convert them through export_onnx")
    return parts[0][0]


def _label_index(g: onnx.GraphProto, threshold: float | None) -> None:
    """`label_index` [N] from `probabilities`: first max, or for a binary model with a decision
    threshold t, probabilities[:, 1] >= t in float32 (the probabilities themselves stay as they are).
    The graph form of evaluation.metrics.labels_from_proba; the parity gate checks the two agree."""
    if threshold is None:
        g.node.append(helper.make_node("ArgMax", ["probabilities"], ["label_index"], axis=1, keepdims=0,
                                       select_last_index=0, name="automl_argmax"))
        return
    g.initializer.append(helper.make_tensor("thr_col", TensorProto.INT64, [1], [1]))
    g.initializer.append(helper.make_tensor("decision_threshold", TensorProto.FLOAT, [], [float(threshold)]))
    g.node.append(helper.make_node("Gather", ["probabilities", "thr_col"], ["thr_p1"], axis=1, name="automl_p1"))
    g.node.append(helper.make_node("GreaterOrEqual", ["thr_p1", "decision_threshold"], ["thr_ge"], name="automl_ge"))
    g.node.append(helper.make_node("Cast", ["thr_ge"], ["thr_idx"], to=TensorProto.INT64, name="automl_ge_cast"))
    g.initializer.append(helper.make_tensor("thr_flat", TensorProto.INT64, [1], [-1]))
    g.node.append(helper.make_node("Reshape", ["thr_idx", "thr_flat"], ["label_index"], name="automl_ge_flat"))


def text_options(pipeline: Any) -> dict[int, dict[str, str]]:
    """Vectorisers tokenise in the C.UTF-8 locale: hosts without en_US.UTF-8 fail otherwise (compat.md P5)."""
    from sklearn.feature_extraction.text import CountVectorizer

    found: dict[int, dict[str, str]] = {}

    def walk(obj: Any) -> None:
        if isinstance(obj, CountVectorizer):  # TfidfVectorizer is a CountVectorizer
            found[id(obj)] = {"locale": "C.UTF-8"}
        for child in getattr(obj, "steps", []) or []:
            walk(child[1])
        for child in getattr(obj, "transformers_", []) or []:
            walk(child[1])

    walk(pipeline)
    return found


def _finish(model: onnx.ModelProto, task: str, classes: list[Any] | None,
            metadata: Mapping[str, str], threshold: float | None = None, check: bool = True) -> onnx.ModelProto:
    """Add the contract's outputs: `label` [N] (from probabilities: first max, or the decision
    threshold of a binary model) and `probabilities`."""
    g = model.graph
    if task == "regression":
        _rename_output(g, "prediction", "raw_prediction")
        shape = "flat_shape"
        g.initializer.append(helper.make_tensor(shape, TensorProto.INT64, [1], [-1]))
        g.node.append(helper.make_node("Reshape", ["raw_prediction", shape], ["label"], name="automl_flatten"))
        g.output.append(helper.make_tensor_value_info("label", TensorProto.FLOAT, [None]))
    else:
        assert classes is not None
        _label_index(g, threshold if len(classes) == 2 else None)
        if all(isinstance(c, (int, np.integer)) for c in classes):
            g.initializer.append(helper.make_tensor("class_labels", TensorProto.INT64, [len(classes)],
                                                    [int(c) for c in classes]))
            ltype = TensorProto.INT64
        else:
            # onnx annotates `vals` as numbers only; a STRING tensor takes a list of bytes (as documented)
            g.initializer.append(helper.make_tensor("class_labels", TensorProto.STRING, [len(classes)],
                                                    [str(c).encode() for c in classes]))  # type: ignore[misc]
            ltype = TensorProto.STRING
        g.node.append(helper.make_node("Gather", ["class_labels", "label_index"], ["label"], axis=0,
                                       name="automl_label"))
        del g.output[:]
        g.output.append(helper.make_tensor_value_info("label", ltype, [None]))
        g.output.append(helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, len(classes)]))
    props = dict(metadata)
    if threshold is not None and task == "binary":
        props["decision_threshold"] = json.dumps(float(np.float32(threshold)))
    helper.set_model_props(model, props)
    model.producer_name = "automl"
    fill_deferred(model)  # last: the graph's copies above carried the large tree nodes without their attributes
    if check:
        onnx.checker.check_model(model)
    return model


def export_onnx(pipeline: Any, schema: Schema, task: str, classes: list[Any] | None,
                metadata: Mapping[str, str], threshold: float | None = None, check: bool = True) -> onnx.ModelProto:
    """One fitted pipeline -> one graph, or a WeightedEnsemble -> one graph (members + weighted average), or
    a StackedEnsemble -> one graph (members + the stacker's nodes: automl/export/stack.py).
    `threshold`: a binary model's decision threshold, applied by the graph's `label` output. `check=False`
    leaves onnx's checker to the caller (`check_graph`): it parses the whole graph again (~4x its bytes)."""
    forget_deferred()  # what an export that failed half-way left behind
    calibrator = pipeline.calibrator if isinstance(pipeline, Calibrated) else None  # task.calibration
    pipeline = pipeline.inner if isinstance(pipeline, Calibrated) else pipeline
    stacked = pipeline if isinstance(pipeline, StackedEnsemble) else None
    # ensemble members and balanced-bagging bags, flattened; a stack's members each sum their own bags
    groups = [_inference_pipelines(m) for m in stacked.members] if stacked is not None else []
    members = [p for g in groups for p in g] if stacked is not None else _inference_pipelines(pipeline)
    floor = float(getattr(pipeline, "floor", 0.0) or 0.0)
    if len(members) == 1 and not floor and stacked is None:
        return _finish(add_calibration(_convert(members[0][0], schema, task), calibrator), task, classes, metadata,
                       threshold, check)
    out = "probabilities" if task != "regression" else "prediction"
    parts = [onnx.compose.add_prefix(_convert(m, schema, task), f"m{i}_", rename_inputs=False)
             for i, (m, _) in enumerate(members)]
    opsets: dict[str, int] = {}
    for p in parts:
        for d in p.opset_import:
            opsets[d.domain] = max(opsets.get(d.domain, 0), d.version)
    nodes, inits, weighted = [], [], []
    for i, (p, (_, w)) in enumerate(zip(parts, members, strict=True)):
        nodes.extend(p.graph.node)
        inits.extend(p.graph.initializer)
        wname = f"ens_w{i}"
        inits.append(helper.make_tensor(wname, TensorProto.FLOAT, [], [float(w)]))
        nodes.append(helper.make_node("Mul", [f"m{i}_{out}", wname], [f"ens_part{i}"], name=f"ens_mul{i}"))
        weighted.append(f"ens_part{i}")
    floored = bool(floor) and task != "regression"
    combined = "ens_sum" if floored else out
    if stacked is not None:
        outs, start = [], 0
        for j, g in enumerate(groups):
            nodes.append(helper.make_node("Sum", weighted[start:start + len(g)], [f"stack_m{j}"], name=f"stack_m{j}"))
            outs.append(f"stack_m{j}")
            start += len(g)
        stack, stack_inits = stack_nodes(outs, stacked.stacker, combined)
        nodes += stack
        inits += stack_inits
    else:
        nodes.append(helper.make_node("Sum", weighted, [combined], name="ens_sum"))
    if floored:
        n_classes = len(classes or [])
        inits.append(helper.make_tensor("floor_scale", TensorProto.FLOAT, [], [1.0 - floor]))
        inits.append(helper.make_tensor("floor_add", TensorProto.FLOAT, [], [floor / n_classes]))
        nodes.append(helper.make_node("Mul", ["ens_sum", "floor_scale"], ["ens_scaled"], name="floor_mul"))
        nodes.append(helper.make_node("Add", ["ens_scaled", "floor_add"], [out], name="floor_add"))
    graph = helper.make_graph(nodes, "automl_ensemble", list(parts[0].graph.input),
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, [None, None])], inits)
    # sorted by domain: the members' own order follows converter registration, which is not the graph's business
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())])
    model.ir_version = max(p.ir_version for p in parts)
    return _finish(add_calibration(model, calibrator), task, classes, metadata, threshold, check)


def check_graph(model: bytes) -> None:
    """onnx's checker on a graph's bytes, what export_onnx(check=True) runs, with the memory its parse used
    handed back before the caller's next step (an onnxruntime session of the same graph)."""
    onnx.checker.check_model(model)
    release_freed()


def session(model_bytes: bytes) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def stress_rows(X: pd.DataFrame, schema: Schema, seed: int) -> pd.DataFrame:
    """The same rows with missing values and unseen categories injected (what users will send)."""
    rng = np.random.default_rng(seed)
    S = X.copy()
    n = len(S)
    for c in schema.features:
        mask = rng.random(n) < 0.15
        if c.role in ("numeric", "datetime"):
            S.loc[mask, c.name] = np.nan
        else:
            col = S[c.name].to_numpy(dtype=object).copy()
            col[mask] = ""
            unseen = (~mask) & (rng.random(n) < 0.15)
            col[unseen] = "__never_seen_level__"
            S[c.name] = col
    return S


def run_in_chunks(sess: Any, feeds: dict[str, np.ndarray], fit_rows: int = 0) -> dict[str, np.ndarray]:
    """sess.run over the rows in slices, outputs by name. A k-NN graph computes the distances of every row
    to every training row at once (190k holdout rows x 128k training rows asked onnxruntime for 98 GB), so
    the slice holds about 20M row pairs per run when the model was fitted on `fit_rows` rows."""
    n = len(next(iter(feeds.values())))
    step = max(64, min(50_000, 20_000_000 // max(fit_rows, 1))) if fit_rows else max(n, 1)
    names = [o.name for o in sess.get_outputs()]
    parts = [sess.run(None, {k: v[i:i + step] for k, v in feeds.items()}) for i in range(0, max(n, 1), step)]
    return {name: np.concatenate([np.asarray(p[j]) for p in parts]) for j, name in enumerate(names)}


def parity_frame(X: pd.DataFrame, schema: Schema, seed: int) -> pd.DataFrame:
    """The rows the parity gate scores: `X`, then the same rows with missing values and unseen levels."""
    return pd.concat([X, stress_rows(X, schema, seed)], ignore_index=True)


def python_outputs(pipeline: Any, rows: pd.DataFrame, task: str) -> np.ndarray:
    """What the gate compares the graph with: predictions (regression) or class probabilities."""
    if task == "regression":
        return np.asarray(pipeline.predict(rows), dtype=np.float64).reshape(-1)
    return np.asarray(pipeline.predict_proba(rows), dtype=np.float64)


def class_labels(model: onnx.ModelProto) -> np.ndarray:
    return onnx.numpy_helper.to_array(next(i for i in model.graph.initializer if i.name == "class_labels"))


def check_parity(model: onnx.ModelProto | bytes, pipeline: Any, X: pd.DataFrame, schema: Schema, task: str,
                 tol: float, seed: int, threshold: float | None = None, fit_rows: int = 0,
                 labels: np.ndarray | None = None, python: np.ndarray | None = None) -> dict[str, Any]:
    """Compare onnxruntime with the Python pipeline, probabilities and the `label` output (with the
    model's decision threshold, if any); raise ParityError where it does not hold. `model` may be the graph's
    bytes (a caller that dropped its Python copy, ~5x their size): a classifier's `labels` are then given.
    `python`: the pipeline's outputs on parity_frame(X), computed where the pipeline lives (`pipeline` unused)."""
    if isinstance(model, bytes):
        if labels is None and task != "regression":
            raise ValueError("check_parity on a graph's bytes needs the class labels")
        sess = session(model)
    else:
        sess = session(model.SerializeToString())
        if task != "regression":
            labels = class_labels(model)
    rows = parity_frame(X, schema, seed)
    feeds = feeds_from_frame(rows, schema.to_json(), where="parity rows")
    outs = run_in_chunks(sess, feeds, fit_rows)
    del sess  # a deep forest's session is ~12x its graph: not held while the outputs are compared
    report: dict[str, Any] = {"rows_checked": len(rows), "rows_with_injected_missing_or_unseen": len(X),
                              "tolerance": tol}
    py = python if python is not None else python_outputs(pipeline, rows, task)
    if task == "regression":
        ox = np.asarray(outs["label"], dtype=np.float64).reshape(-1)
        # float32 carries ~7 digits of the target's scale: a prediction near 0 on a target that crosses
        # zero is judged against the typical magnitude of the predictions, not against 0
        scale = np.maximum(np.maximum(np.abs(py), np.mean(np.abs(py))), 1.0)
        rel = np.abs(ox - py) / scale
        report.update(kind="relative (|diff| / max(|y|, mean |y|, 1)) on predictions",
                      max_diff=float(rel.max()), max_abs_diff=float(np.abs(ox - py).max()))
    else:
        ox = np.asarray(outs["probabilities"], dtype=np.float64)
        diff = np.abs(ox - py)
        top2 = np.sort(py, axis=1)[:, -2:] if py.shape[1] > 1 else np.zeros((len(py), 2))
        clear = (top2[:, 1] - top2[:, 0]) > 2 * tol  # rows where the label is not a near-tie
        if threshold is not None and py.shape[1] == 2:
            clear = np.abs(py[:, 1] - threshold) > 2 * tol  # rows not within float noise of the threshold
        # the graph's own label output against the Python rule, through the class labels it carries
        assert labels is not None
        py_label = labels[labels_from_proba(py, threshold)]
        ox_label = np.asarray(outs["label"]).reshape(-1)
        if labels.dtype.kind in "SO":
            py_label = np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in py_label], dtype=object)
            ox_label = np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in ox_label], dtype=object)
        label_mismatch = int(((py_label != ox_label) & clear).sum())
        report.update(kind="absolute on probabilities", max_diff=float(diff.max()),
                      label_mismatches=label_mismatch, labels_checked=int(clear.sum()))
        if threshold is not None:
            report["decision_threshold"] = float(np.float32(threshold))
        if label_mismatch:
            report["passed"] = False
    report["passed"] = bool(report.get("passed", True) and report["max_diff"] <= tol)
    if not report["passed"]:
        raise ParityError(f"ONNX parity failed: max diff {report['max_diff']:.3g} > {tol:g} "
                          f"({report.get('label_mismatches', 0)} label mismatches) on {len(rows)} rows")
    return report
