"""A run on several tables, checked from raw tables to predictions: the aggregates recomputed with the
saved definitions (automl/data/relational.py) must equal the training frame's, and the ONNX graph must
score both frames alike. The result goes to relational_parity.json and the manifest's `relational`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automl.data.relational import compute_from_run, read_layout
from automl.export.contract import feeds_from_frame, input_schema
from automl.export.onnx import session


def check_parity(run_dir: Path, flat: pd.DataFrame, input_names: list[str], tol: float = 1e-6) -> dict[str, Any]:
    """Raw tables -> saved definitions -> frame, against the frame the model was trained on."""
    again = compute_from_run(run_dir, None, "data.tables")
    layout = read_layout(run_dir)
    idx = layout["tables"][layout["target_table"]]["index"]
    n_again = len(again)
    # the engine dropped rows without a target; line the recomputed rows up by the target table's index
    again = again.set_index(idx, drop=False).loc[flat[idx].to_numpy()].reset_index(drop=True)
    agg = [d["name"] for d in layout["features"]]
    worst, worst_col, mismatched = 0.0, "", []
    for c in agg:
        a, b = flat[c], again[c]
        if pd.api.types.is_numeric_dtype(a):
            av, bv = a.to_numpy(np.float64), pd.to_numeric(b, errors="coerce").to_numpy(np.float64)
            same_nan = np.isnan(av) == np.isnan(bv)
            d = np.nanmax(np.abs(av - bv)) if np.isfinite(av).any() else 0.0
            if not same_nan.all() or d > tol * max(1.0, np.nanmax(np.abs(av)) if np.isfinite(av).any() else 1.0):
                mismatched.append(c)
            if d > worst:
                worst, worst_col = float(d), c
        elif not (a.astype(str).fillna("") == b.astype(str).fillna("")).all():
            mismatched.append(c)
    used = [c for c in agg if c in input_names]
    return {"rows": len(flat), "aggregate_features": len(agg), "used_by_model": len(used),
            "max_abs_diff": worst, "worst_feature": worst_col, "mismatched": mismatched,
            "passed": not mismatched and n_again >= len(flat), "frame_from_raw_tables": again}


def end_to_end_parity(run_dir: Path, flat: pd.DataFrame, model_path: Path, tol: float) -> dict[str, Any]:
    """Raw tables in, predictions out: the ONNX graph on the recomputed frame vs on the training frame.

    With parity.json (pipeline vs graph on the training frame) this closes the chain from raw tables
    to the Python pipeline's predictions."""
    sess = session(Path(model_path).read_bytes())
    schema = input_schema(sess.get_modelmeta().custom_metadata_map)
    out = check_parity(run_dir, flat, [c["name"] for c in schema], tol)
    again = out.pop("frame_from_raw_tables")
    names = [o.name for o in sess.get_outputs()]
    key = "probabilities" if "probabilities" in names else "label"
    a = np.asarray(dict(zip(names, sess.run(None, feeds_from_frame(flat, schema)), strict=True))[key], np.float64)
    b = np.asarray(dict(zip(names, sess.run(None, feeds_from_frame(again, schema)), strict=True))[key], np.float64)
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    scale = 1.0 if key == "probabilities" else max(1.0, float(np.max(np.abs(a))) if a.size else 1.0)
    synthesised = {d["name"] for d in read_layout(run_dir)["features"]}
    out.update(onnx_output=key, onnx_max_abs_diff=diff, tol=tol,
               used=[c["name"] for c in schema if c["name"] in synthesised])
    out["passed"] = bool(out["passed"] and diff <= tol * scale)
    return out
