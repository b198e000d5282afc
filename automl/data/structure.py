"""The rows' structure as declared (`data.group_column`, `data.time_column`): the split it calls for, why,
and warnings for columns that look like a group key or a time order when neither was declared."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from automl.data.split import Structure
from automl.errors import UserError

# a column is flagged as a likely group key when its values repeat (at most this share of rows are
# distinct, at least 2 rows per value on average) and the target barely varies within a value
GROUP_MAX_DISTINCT = 0.5
GROUP_MIN_DISTINCT = 10
GROUP_WITHIN_SHARE = 0.25  # within-value variance (or disagreement) over the total
TIME_NAME = ("date", "time", "timestamp", "day", "month", "year", "period", "week")


def check_columns(df: pd.DataFrame, group_column: str, time_column: str) -> None:
    for key, col in (("data.group_column", group_column), ("data.time_column", time_column)):
        if col and col not in df.columns:
            cols = list(df.columns)
            raise UserError(key, f"'{col}' is not a column of the data",
                            f"Set {key} to one of: {', '.join(map(str, cols[:20]))}{' ...' if len(cols) > 20 else ''}.")


def time_order(s: pd.Series, column: str) -> np.ndarray:
    """Ordered numbers for a datetime or numeric column (datetime: seconds); a missing value is an error."""
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        order = s.to_numpy(dtype=float)
    else:
        parsed = pd.to_datetime(s, errors="coerce", utc=True, format="mixed")
        if parsed.isna().sum() > s.isna().sum():
            bad = s[parsed.isna() & s.notna()].iloc[0]
            raise UserError("data.time_column", f"'{column}' holds {bad!r}, neither a date nor a number",
                            "Declare a datetime or numeric column.")
        order = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=float)
    if np.isnan(order).any():
        raise UserError("data.time_column", f"'{column}' is missing in {int(np.isnan(order).sum())} row(s)",
                        "Fill the time of every row, or drop those rows.")
    return order


def structure_of(df: pd.DataFrame, group_column: str, time_column: str, gap: int) -> Structure:
    """The structure of the rows of `df` (a missing group value is a group of its own)."""
    groups = None
    if group_column:
        groups = pd.factorize(df[group_column].astype(str).where(df[group_column].notna(), "\0missing"))[0]
    order = time_order(df[time_column], time_column) if time_column else None
    return Structure(groups=groups, order=order, gap=int(gap))


def describe(structure: Structure, group_column: str, time_column: str, gap: int) -> dict[str, Any]:
    """The split used and why, for the profile and the model card."""
    kind = structure.kind
    if kind == "random":
        how = "random rows (stratified by class for classification)"
        why = "no data.group_column or data.time_column was declared: rows are taken as independent"
    elif kind == "group":
        how = f"whole groups of '{group_column}' in the holdout and in every fold (stratified by class where it can be)"
        why = "data.group_column was declared: the model is scored on groups it has not seen"
    else:
        how = (f"the latest rows by '{time_column}' are the holdout; the folds chain forward (train on the past, "
               f"validate on the next block{f', {gap} rows left out between them' if gap else ''})")
        if kind == "time+group":
            how += f"; groups of '{group_column}' stay whole, placed by their first time"
        why = "data.time_column was declared: the model is scored on rows later than any it was trained on"
    return {"split": kind, "how": how, "why": why, "group_column": group_column, "time_column": time_column,
            "time_gap": gap}


def suspects(df: pd.DataFrame, target: str, task: str, skip: list[str]) -> list[str]:
    """Warnings for columns that look like a group key or a time order (neither declared)."""
    out: list[str] = []
    n = len(df)
    if n < 20:
        return out
    y = df[target]
    ok = y.notna()
    y_num = pd.Series(pd.factorize(y[ok])[0] if task != "regression" else y[ok].to_numpy(dtype=float),
                      index=y[ok].index)
    total = float(y_num.var()) if task == "regression" else 1.0 - float(y_num.value_counts(normalize=True).max())
    for col in df.columns:
        if col == target or col in skip:
            continue
        s = df[col]
        distinct = s.nunique(dropna=True)
        name = str(col).lower()
        if any(w in name for w in TIME_NAME) and (pd.api.types.is_datetime64_any_dtype(s) or s.dtype == object):
            parsed = pd.to_datetime(s.dropna().astype(str).head(200), errors="coerce", format="mixed")
            if len(parsed) and parsed.notna().mean() > 0.95:
                out.append(f"column '{col}' looks like a time order: if the model will score later rows, "
                           f"declare data.time_column={col} so the holdout and the folds look forward")
                continue
        if not (GROUP_MIN_DISTINCT <= distinct <= GROUP_MAX_DISTINCT * n) or total <= 0:
            continue
        if pd.api.types.is_float_dtype(s) and not np.all(np.mod(s.dropna().to_numpy(), 1) == 0):
            continue  # a measurement, not a key
        key = s[ok].astype(str)
        if task == "regression":
            within = float(y_num.groupby(key).var(ddof=0).mul(key.value_counts()).sum() / len(key))
            share = within / total
        else:
            agree = y_num.groupby(key).agg(lambda v: v.value_counts(normalize=True).max())
            share = float((1 - agree).mul(key.value_counts()).sum() / len(key)) / total
        if share < GROUP_WITHIN_SHARE:
            out.append(f"column '{col}' looks like a group key ({distinct} values repeated over {n} rows, the target "
                       f"nearly constant within each): if new rows come from new groups, declare "
                       f"data.group_column={col} so the score is measured on unseen groups")
    return out
