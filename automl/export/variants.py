"""Lighter variants of a shipped graph, kept only where they hold up (export.variants).

`int8`: dynamic int8 quantisation of the MatMul/Gemm weights (onnxruntime.quantization.quantize_dynamic: the
MLP's layers; the ai.onnx.ml operators of linear models and tree ensembles are left as they are, so a graph
without MatMul/Gemm has no int8 variant). `float16`: the MatMul/Gemm weights stored as float16 and cast back
to float32 at run time (half the bytes of those weights, the same float32 arithmetic on the rounded values).

A variant is compared with the shipped graph, which passed the parity gate against the Python pipeline, on the
same rows and on the same rows with missing values and unseen categories injected: it is kept only when its
outputs stay within `tol` of the shipped graph's (probabilities absolute, regression relative as the gate
measures them) and no clear label changes. Its size, latency and holdout score are measured and recorded
either way, so a refusal says what the variant would have saved and what it broke.

`trim`: the tree ensemble with fewer trees (automl/export/trim.py), made in the final refit where the Python
model lives and gated there on parity against the trimmed Python model; here it is measured and scored like the
others and kept when that gate held and the graph is smaller. Its tolerance is on the holdout score.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
from onnx import numpy_helper

from automl.export.contract import feeds_from_frame
from automl.export.measure import measure, one_thread_session

KINDS = ("int8", "float16", "trim")


def _weights(model: onnx.ModelProto) -> set[str]:
    """Initializers that are MatMul/Gemm weights (the second input)."""
    return {n.input[1] for n in model.graph.node if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1}


def int8(model_bytes: bytes) -> bytes | None:
    """The graph with dynamically int8-quantised MatMul/Gemm weights; None when it has none."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if not _weights(onnx.load_from_string(model_bytes)):
        return None
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "in.onnx", Path(d) / "out.onnx"
        src.write_bytes(model_bytes)
        # DefaultTensorType: shape inference does not type tensors made by ai.onnx.ml operators (the encoders)
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        return dst.read_bytes()


def float16(model_bytes: bytes) -> bytes | None:
    """The graph with MatMul/Gemm weights stored as float16 (a Cast node restores float32); None without any."""
    model = onnx.load_from_string(model_bytes)
    names = _weights(model)
    inits = [i for i in model.graph.initializer if i.name in names and i.data_type == onnx.TensorProto.FLOAT]
    if not inits:
        return None
    for init in inits:
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "_fp16")
        model.graph.initializer.remove(init)
        model.graph.initializer.append(half)
        model.graph.node.insert(0, onnx.helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                                                         name=init.name + "_cast"))
    return model.SerializeToString()


MAKERS: dict[str, Callable[[bytes], bytes | None]] = {"int8": int8, "float16": float16}


def compare(variant: bytes, shipped: bytes, rows: pd.DataFrame, schema: list[dict[str, str]], task: str,
            tol: float) -> dict[str, Any]:
    """How far the variant's outputs are from the shipped graph's on `rows` (already including stressed rows)."""
    feeds = feeds_from_frame(rows, schema, where="variant rows")
    a = one_thread_session(shipped).run(None, feeds)
    b = one_thread_session(variant).run(None, feeds)
    names = [o.name for o in one_thread_session(shipped).get_outputs()]
    out_a, out_b = dict(zip(names, a, strict=True)), dict(zip(names, b, strict=True))
    if task == "regression":
        x, y = (np.asarray(o["label"], dtype=np.float64).reshape(-1) for o in (out_a, out_b))
        scale = np.maximum(np.maximum(np.abs(x), np.mean(np.abs(x))), 1.0)
        diff = float((np.abs(y - x) / scale).max())
        flips = 0
    else:
        pa, pb = (np.asarray(o["probabilities"], dtype=np.float64) for o in (out_a, out_b))
        diff = float(np.abs(pb - pa).max())
        top2 = np.sort(pa, axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > 2 * tol
        flips = int(((np.asarray(out_a["label"]) != np.asarray(out_b["label"])) & clear).sum())
    return {"max_diff": diff, "label_flips": flips, "tolerance": tol, "passed": diff <= tol and flips == 0}


def trimmed(made: dict[str, Any], model_bytes: bytes, base: dict[str, Any], check_rows: pd.DataFrame,
            hold: pd.DataFrame, schema: list[dict[str, str]], task: str,
            score: Callable[[bytes], float] | None) -> dict[str, Any]:
    """The trim variant's record: what the final refit made (trim.trim), measured, scored and compared with
    model.onnx (how far trimming moved the outputs; the gate was against the trimmed Python model)."""
    entry = {k: v for k, v in made.items() if k != "model"}
    if "model" not in made:
        return {**entry, "kept": False, "why": made.get("why", "not made")}
    small = made["model"]
    m = measure(small, hold, schema, time_limit_s=1.0)
    entry.update(model_mb=m["model_mb"], latency_ms_p50=m["latency_ms_p50"], shipped_model_mb=base["model_mb"],
                 shipped_latency_ms_p50=base["latency_ms_p50"], tolerance=made["score_tol"],
                 max_diff=compare(small, model_bytes, check_rows, schema, task, 0.0)["max_diff"])
    if score is not None:
        entry["holdout_score"] = score(small)
    entry["kept"] = m["model_mb"] < base["model_mb"]
    if not entry["kept"]:
        entry["why"] = "no smaller than model.onnx"
    return entry


def variants(model_bytes: bytes, kinds: list[str], check_rows: pd.DataFrame, hold: pd.DataFrame,
             schema: list[dict[str, str]], task: str, tol: float,
             score: Callable[[bytes], float] | None, out_dir: Path,
             trim_made: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Each requested variant made, compared, measured and scored; a kept one is written as
    `model.<kind>.onnx` in out_dir. `check_rows`: the rows the parity gate used, with stressed copies.
    `trim_made`: the final refit's trim variant (trim.trim), when `trim` is requested."""
    base = measure(model_bytes, hold, schema, time_limit_s=1.0)
    report = []
    for kind in kinds:
        if kind == "trim":
            cut = trimmed(trim_made or {"kind": "trim", "why": "the final refit made none"}, model_bytes, base,
                          check_rows, hold, schema, task, score)
            if cut["kept"] and trim_made:
                cut["file"] = write(out_dir, kind, trim_made["model"])
            report.append(cut)
            continue
        try:
            made = MAKERS[kind](model_bytes)
        except Exception as e:  # onnxruntime.quantization refuses some graphs: that variant is not offered
            report.append({"kind": kind, "kept": False, "why": f"not made: {type(e).__name__}: {str(e)[:200]}"})
            continue
        if made is None:
            report.append({"kind": kind, "kept": False, "why": "the graph has no MatMul/Gemm weights to lighten"})
            continue
        gate = compare(made, model_bytes, check_rows, schema, task, tol)
        m = measure(made, hold, schema, time_limit_s=1.0)
        entry: dict[str, Any] = {"kind": kind, **gate, "model_mb": m["model_mb"], "latency_ms_p50": m["latency_ms_p50"],
                                 "shipped_model_mb": base["model_mb"], "shipped_latency_ms_p50": base["latency_ms_p50"]}
        if score is not None:
            entry["holdout_score"] = score(made)
        entry["kept"] = bool(gate["passed"])
        if entry["kept"]:
            entry["file"] = write(out_dir, kind, made)
        else:
            entry["why"] = (f"outputs differ from the shipped graph by {gate['max_diff']:.3g} > {tol:g}"
                            + (f" and {gate['label_flips']} clear label(s) flip" if gate["label_flips"] else ""))
        report.append(entry)
    return report


def write(out_dir: Path, kind: str, model: bytes) -> str:
    """model.<kind>.onnx, written whole or not at all; returns its name."""
    path = out_dir / f"model.{kind}.onnx"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(model)
    os.replace(tmp, path)
    return path.name
