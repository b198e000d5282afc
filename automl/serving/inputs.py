"""Request bodies -> graph feeds, validated against the model's input schema (ONNX metadata).

JSON: a list of records, `{"records": [...]}` or one record. Numeric columns take JSON numbers or
null (missing); categorical and text columns take strings (numbers are read as their text) or null.
CSV (`Content-Type: text/csv`): a header row and data rows, read as `automl predict` reads files.
Any violation is a RequestError (HTTP 422) naming the column: a missing column, a wrong type, or a
category the model never saw in training (unless the server allows unseen categories).
Columns the model does not use are ignored.
"""
from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from automl.data.roles import to_epoch_seconds
from automl.errors import UserError
from automl.export.contract import feeds_from_frame
from automl.serving.artefact import LoadedModel


class RequestError(Exception):
    def __init__(self, status: int, column: str | None, message: str, fix: str = "") -> None:
        self.status, self.column, self.message, self.fix = status, column, message, fix
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message}
        if self.column is not None:
            out["column"] = self.column
        if self.fix:
            out["fix"] = self.fix
        return out


def records_from_json(body: bytes) -> list[dict[str, Any]]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise RequestError(400, None, f"the body is not valid JSON ({e})",
                           'Send a list of records, e.g. [{"col": 1.5, ...}].') from None
    if isinstance(doc, dict):
        doc = doc.get("records", [doc])
    if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
        raise RequestError(400, None,
                           "the JSON body must be a list of records (objects), {\"records\": [...]} or one record",
                           'Send e.g. [{"col": 1.5, ...}].')
    if not doc:
        raise RequestError(400, None, "the request holds no records", "Send at least one record.")
    return doc


def _number(col: str, v: Any, row: int) -> float:
    if v is None:
        return math.nan
    if type(v) is float or type(v) is int:
        return float(v) if math.isfinite(v) else math.nan
    raise RequestError(422, col, f"column '{col}' expects a number, but row {row} holds {v!r} ({type(v).__name__})",
                       "Send numbers as JSON numbers, or null for missing.")


def _text(col: str, v: Any, row: int, known: frozenset[str] | None) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, int, float)):
        s = str(v)
        # a float column read as categorical in training keeps repr(float) levels (roles.categorical_strings)
        if known is not None and s not in known and not isinstance(v, bool) and repr(float(v)) in known:
            return repr(float(v))
        return s
    raise RequestError(422, col, f"column '{col}' expects a string, but row {row} holds a {type(v).__name__}",
                       "Send categories as JSON strings (or null for missing).")


def _datetimes(col: str, vals: list[Any]) -> np.ndarray:
    import pandas as pd

    for i, v in enumerate(vals):
        if (v is not None and not isinstance(v, str | int | float)) or isinstance(v, bool):
            raise RequestError(422, col, f"column '{col}' expects a date/time, but row {i} holds a {type(v).__name__}",
                               "Send ISO-8601 strings (2024-05-01T13:45:00) or epoch seconds, or null for missing.")
    out = np.full(len(vals), np.nan)
    strings = [i for i, v in enumerate(vals) if isinstance(v, str)]
    for i, v in enumerate(vals):
        if isinstance(v, int | float) and math.isfinite(v):
            out[i] = float(v)  # epoch seconds already
    if strings:
        out[strings] = to_epoch_seconds(pd.Series([vals[i] for i in strings], dtype=object))
    for i, v in enumerate(vals):
        if np.isnan(out[i]) and v is not None and str(v).strip() != "" and not (isinstance(v, float) and math.isnan(v)):
            raise RequestError(422, col, f"column '{col}' expects a date/time, but row {i} holds {v!r}",
                               "Send ISO-8601 strings (2024-05-01T13:45:00) or epoch seconds, or null for missing.")
    return out.astype(np.float64)


def feeds_from_records(records: list[dict[str, Any]], model: LoadedModel) -> dict[str, np.ndarray]:
    feeds: dict[str, np.ndarray] = {}
    n = len(records)
    for c in model.schema:
        name = c["name"]
        try:
            vals = [r[name] for r in records]
        except KeyError:
            row = next(i for i, r in enumerate(records) if name not in r)
            raise RequestError(422, name, f"column '{name}' is missing" + (f" in record {row}" if n > 1 else ""),
                               "Send every input column of GET /schema (null for a missing value).") from None
        if c["dtype"] == "float32":
            feeds[name] = np.array([_number(name, v, i) for i, v in enumerate(vals)], dtype=np.float32).reshape(n, 1)
        elif c["dtype"] == "float64":  # datetime: ISO-8601 strings or epoch seconds (the ONNX contract)
            feeds[name] = _datetimes(name, vals).reshape(n, 1)
        else:
            known = model.categories.get(name)
            feeds[name] = np.array([_text(name, v, i, known) for i, v in enumerate(vals)], dtype=object).reshape(n, 1)
    return feeds


def feeds_from_csv(body: bytes, model: LoadedModel) -> dict[str, np.ndarray]:
    import pandas as pd

    try:
        df = pd.read_csv(io.BytesIO(body), low_memory=False, encoding="utf-8")
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise RequestError(400, None, f"the CSV body cannot be parsed ({str(e).splitlines()[0][:160]})",
                           "Send UTF-8 CSV with a header row.") from None
    if len(df) == 0:
        raise RequestError(400, None, "the CSV body has no data rows", "Send a header row and data rows.")
    df.columns = [str(c) for c in df.columns]
    try:
        return feeds_from_frame(df, model.schema, where="the request")
    except UserError as e:
        col = e.where.split("'")[1] if "'" in e.where else None
        raise RequestError(422, col, f"{e.where}: {e.rule}", e.fix) from None


def check_categories(feeds: Mapping[str, np.ndarray], model: LoadedModel) -> None:
    """A category never seen in training is a 422 naming the column (the graph would score it as 'unknown')."""
    for col, known in model.categories.items():
        vals = feeds[col].ravel()
        for i, v in enumerate(vals):
            if v != "" and v not in known:
                levels = sorted(known)
                raise RequestError(422, col, f"column '{col}' holds {v!r} (row {i}), a category not seen in training",
                                   f"Use one of: {', '.join(levels[:20])}{' ...' if len(levels) > 20 else ''} "
                                   "(or null for missing).")
