"""Column roles and task type, inferred from the data; the model frame every stage shares.

Roles: numeric, categorical, text, datetime, id, constant. Numeric, categorical, text and datetime
columns become features (graph inputs); id and constant columns are excluded and reported.
The model frame is what both the Python pipeline and the ONNX graph see: numeric columns as
float32 with NaN for missing, categorical/text columns as str with "" for missing, datetime columns
as float64 seconds since 1970-01-01 UTC with NaN for missing (ONNX I/O contract).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from automl.errors import UserError

FEATURE_ROLES = ("numeric", "categorical", "text", "datetime")
_ID_NAME = re.compile(r"(^|_|\b)(id|uuid|guid|key|index|idx)$|^(id|row)(_|$)", re.IGNORECASE)


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    role: str  # numeric | categorical | text | datetime | id | constant
    dtype: str  # dtype as read
    reason: str = ""

    @property
    def is_feature(self) -> bool:
        return self.role in FEATURE_ROLES

    @property
    def onnx_kind(self) -> str:
        return {"numeric": "float", "datetime": "double"}.get(self.role, "string")


@dataclass(frozen=True)
class Schema:
    columns: tuple[ColumnInfo, ...]

    @property
    def features(self) -> list[ColumnInfo]:
        return [c for c in self.columns if c.is_feature]

    def names(self, role: str) -> list[str]:
        return [c.name for c in self.columns if c.role == role]

    @property
    def excluded(self) -> list[ColumnInfo]:
        return [c for c in self.columns if not c.is_feature]

    def to_json(self) -> list[dict[str, str]]:
        dtypes = {"numeric": "float32", "datetime": "float64"}  # datetime: epoch seconds UTC
        return [{"name": c.name, "kind": c.role, "dtype": dtypes.get(c.role, "string")} for c in self.features]

    def to_dict(self) -> list[dict[str, str]]:
        return [asdict(c) for c in self.columns]


def _is_text(s: pd.Series) -> bool:
    sample = s.dropna().astype(str).head(2000)
    if sample.empty:
        return False
    words = sample.str.split().str.len().mean()
    return bool(words >= 3.0 and sample.nunique() > 0.5 * len(sample))


def _looks_datetime(s: pd.Series) -> bool:
    sample = s.dropna().astype(str).head(500)
    if sample.empty or not sample.str.contains(r"\d", regex=True).all():
        return False
    if sample.str.fullmatch(r"-?\d+(\.\d+)?").all():
        return False  # plain numbers stored as text
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() > 0.95)


def infer_column(name: str, s: pd.Series, n_rows: int, declared_id: bool) -> ColumnInfo:
    dtype = str(s.dtype)
    nunique = s.nunique(dropna=True)
    if declared_id:
        return ColumnInfo(name, "id", dtype, "declared in data.id_columns")
    if nunique <= 1:
        return ColumnInfo(name, "constant", dtype, "all values missing" if nunique == 0 else "a single value")
    if pd.api.types.is_bool_dtype(s) or (pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_complex_dtype(s)):
        is_int = pd.api.types.is_integer_dtype(s)
        if is_int and nunique == n_rows and n_rows >= 20 and (_ID_NAME.search(name) or s.is_monotonic_increasing):
            why = ", named like an id" if _ID_NAME.search(name) else ", increasing"
            return ColumnInfo(name, "id", dtype, "integer, unique per row" + why)
        return ColumnInfo(name, "numeric", dtype)
    if pd.api.types.is_datetime64_any_dtype(s):
        return ColumnInfo(name, "datetime", dtype, "datetime values (used as date parts)")
    # object / string / category columns
    if _looks_datetime(s):
        return ColumnInfo(name, "datetime", dtype, "parses as dates (used as date parts)")
    if _is_text(s):
        return ColumnInfo(name, "text", dtype, "free text (3+ words on average)")
    if nunique == s.notna().sum() and n_rows >= 20 and nunique > 0.95 * n_rows:
        return ColumnInfo(name, "id", dtype, "string, unique per row")
    return ColumnInfo(name, "categorical", dtype)


def infer_schema(df: pd.DataFrame, target: str, id_columns: list[str], drop_columns: list[str],
                 group_column: str = "") -> Schema:
    """`group_column`: the declared group key, kept out of the features (data.group_is_feature=false)."""
    n = len(df)
    cols = []
    for name in df.columns:
        if name == target:
            continue
        if name == group_column:
            cols.append(ColumnInfo(name, "id", str(df[name].dtype),
                                   "declared in data.group_column (data.group_is_feature=true makes it a feature)"))
            continue
        if name in drop_columns:
            cols.append(ColumnInfo(name, "constant" if df[name].nunique() <= 1 else "id", str(df[name].dtype),
                                   "declared in data.drop_columns"))
            continue
        cols.append(infer_column(name, df[name], n, name in id_columns))
    schema = Schema(tuple(cols))
    if not schema.features:
        raise UserError("data.path", f"no usable feature column besides the target '{target}' "
                        f"(excluded: {', '.join(c.name + '=' + c.role for c in schema.excluded) or 'none'})",
                        "Add feature columns, or remove them from data.id_columns/data.drop_columns.")
    return schema


def infer_task(y: pd.Series) -> str:
    """Task type from the target column: AutoGluon-style rules on dtype and cardinality."""
    y = y.dropna()
    nunique = y.nunique()
    if nunique <= 1:
        return "constant"
    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return "binary" if nunique == 2 else "multiclass"
    if nunique == 2:
        return "binary"
    integral = bool(np.all(np.equal(np.mod(y.to_numpy(dtype=float), 1), 0)))
    if integral and nunique <= 20 and len(y) >= 5 * nunique:
        return "multiclass"
    return "regression"


def to_model_frame(df: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """The frame the pipeline and the graph both see (ONNX I/O contract)."""
    out = {}
    for c in schema.features:
        s = df[c.name]
        if c.role == "numeric":
            v = pd.to_numeric(s, errors="coerce").astype("float64").to_numpy()
            v = np.where(np.isfinite(v), v, np.nan)  # +/-inf travel as missing
            out[c.name] = v.astype(np.float32)
        elif c.role == "datetime":
            out[c.name] = to_epoch_seconds(s)
        else:
            out[c.name] = categorical_strings(s)
    return pd.DataFrame(out, index=df.index)


def categorical_strings(s: pd.Series) -> np.ndarray:
    """Strings with "" for missing: the one sentinel shared with the graph (compat.md P7)."""
    if pd.api.types.is_float_dtype(s):
        # a float column read as categorical (rare): 1.0 -> "1" would differ between readers; keep repr
        vals = s.map(lambda v: "" if pd.isna(v) else repr(float(v)))
    else:
        vals = s.map(lambda v: "" if pd.isna(v) else str(v))
    return vals.to_numpy(dtype=object)


def to_epoch_seconds(s: pd.Series) -> np.ndarray:
    """The datetime contract: seconds since 1970-01-01 UTC as float64 (exact to the microsecond);
    naive times count as UTC, aware ones are converted; numbers are taken as epoch seconds already;
    missing or unparseable values are NaN."""
    import warnings

    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        v = s.astype("float64").to_numpy()
        return np.where(np.isfinite(v), v, np.nan)
    if pd.api.types.is_datetime64_any_dtype(s):
        ts = s.dt.tz_convert("UTC").dt.tz_localize(None) if getattr(s.dt, "tz", None) is not None else s
    else:
        txt = s.astype(object).where(s.notna() & (s.astype(str).str.strip() != ""), None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ts = pd.to_datetime(txt, errors="coerce", format="mixed", utc=True).dt.tz_localize(None)
    ns = ts.astype("datetime64[ns]").to_numpy().astype("int64").astype(np.float64)
    return np.where(ts.isna().to_numpy(), np.nan, ns / 1e9)
