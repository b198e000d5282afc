"""The ONNX I/O contract, in one place: how raw columns become graph inputs, and back.

One input per raw feature column, named after it: numeric -> float32 [N,1] (missing = NaN),
categorical/text -> string [N,1] (missing = ""), datetime -> float64 [N,1] seconds since 1970-01-01
UTC (missing = NaN; naive times count as UTC). Outputs: `label` [N] and, for classifiers,
`probabilities` float32 [N,C] in the order of the `class_labels` metadata. With task.coverage set, also
`interval` float32 [N,2] (regression: lower, upper; a constant width, or one normalised by sigma(x) from the
graph's own `difficulty_*` nodes) or `prediction_set` bool [N,C] (classification: class j is in the row's
set), calibrated so the truth falls inside with the `conformal` metadata's coverage.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from automl.data.roles import Schema, categorical_strings, to_epoch_seconds
from automl.errors import UserError


def input_schema(meta: Mapping[str, str]) -> list[dict[str, str]]:
    return json.loads(meta["input_schema"])


def feeds_from_frame(df: pd.DataFrame, schema: list[dict[str, str]], where: str = "--data") -> dict[str, np.ndarray]:
    """Graph feeds from a raw frame; a missing column or an unusable dtype is a user error naming it."""
    missing = [c["name"] for c in schema if c["name"] not in df.columns]
    if missing:
        raise UserError(f"column '{missing[0]}'", f"the model needs it but {where} lacks it"
                        + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                        "Add the column (empty values are allowed) or score with a model trained without it.")
    feeds: dict[str, np.ndarray] = {}
    for c in schema:
        s = df[c["name"]]
        if c["dtype"] == "float64":  # datetime: epoch seconds UTC (ISO-8601 strings and datetimes convert)
            v = to_epoch_seconds(s)
            bad = s[np.isnan(v) & s.notna().to_numpy() & (s.astype(str).str.strip() != "").to_numpy()]
            if len(bad):
                raise UserError(f"column '{c['name']}'", f"must be a date/time, but holds {str(bad.iloc[0])!r}",
                                "Send ISO-8601 (2024-05-01T13:45:00, optionally with an offset) or epoch seconds; "
                                "leave the value empty for missing.")
            feeds[c["name"]] = v.astype(np.float64).reshape(-1, 1)
            continue
        if c["dtype"] == "float32":
            if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
                v = pd.to_numeric(s, errors="coerce")
                bad = s[v.isna() & s.notna() & (s.astype(str).str.strip() != "")]
                if len(bad):
                    raise UserError(f"column '{c['name']}'", f"must be numeric, but holds {str(bad.iloc[0])!r}",
                                    "Send numbers (or leave the value empty for missing).")
                s = v
            v = s.astype("float64").to_numpy()
            v = np.where(np.isfinite(v), v, np.nan)
            feeds[c["name"]] = v.astype(np.float32).reshape(-1, 1)
        else:
            feeds[c["name"]] = categorical_strings(s).reshape(-1, 1)
    return feeds


def class_labels(meta: Mapping[str, str]) -> list[Any] | None:
    raw = meta.get("class_labels")
    return json.loads(raw) if raw else None


def conformal_columns(outputs: Mapping[str, Any], classes: list[Any] | None) -> dict[str, np.ndarray]:
    """Table columns for a graph's conformal output, if it has one: `lower`, `upper` (regression) or
    `in_set_<class>` per class (classification)."""
    if "interval" in outputs:
        iv = np.asarray(outputs["interval"])
        return {"lower": iv[:, 0], "upper": iv[:, 1]}
    if "prediction_set" in outputs and classes is not None:
        sets = np.asarray(outputs["prediction_set"], dtype=bool)
        return {f"in_set_{c}": sets[:, j] for j, c in enumerate(classes)}
    return {}


def metadata(schema: Schema, task: str, target: str, metric: str, classes: list[Any] | None,
             engine_version: str, categories: dict[str, list[str]] | None = None) -> dict[str, str]:
    """The graph's metadata_props: the input schema, target, task, metric, engine version, training levels
    per categorical column and the class labels in `probabilities` order."""
    meta = {
        "input_schema": json.dumps(schema.to_json()),
        "target": target, "task": task, "metric": metric, "engine_version": engine_version,
    }
    if categories:  # training levels per categorical column, so scoring can report unseen ones
        meta["categories"] = json.dumps(categories)
    if classes is not None:
        meta["class_labels"] = json.dumps([c.item() if hasattr(c, "item") else c for c in classes])
    return meta
