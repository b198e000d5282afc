"""The target column as the engine sees it: float64 for regression, class codes in a fixed order otherwise."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from automl.errors import UserError


def prepare_target(df: pd.DataFrame, target: str, task: str) -> tuple[np.ndarray, list[Any] | None]:
    y = df[target]
    if task == "regression":
        v = pd.to_numeric(y, errors="coerce")
        if v.isna().any():
            bad = y[v.isna()].iloc[0]
            raise UserError(f"column '{target}'", f"regression needs a numeric target, but it holds {bad!r}",
                            "Set task.type=binary/multiclass, or clean the column.")
        v = v.to_numpy(dtype=np.float64)
        if not np.isfinite(v).all():
            raise UserError(f"column '{target}'", "the target holds +/-inf", "Remove or fix those rows.")
        return v, None
    if pd.api.types.is_float_dtype(y) and np.all(np.mod(y.to_numpy(), 1) == 0):
        y = y.astype(np.int64)
    if pd.api.types.is_bool_dtype(y):
        y = y.astype(np.int64)
    if not pd.api.types.is_integer_dtype(y):
        y = y.astype(str)
    values, codes = np.unique(y.to_numpy(), return_inverse=True)
    # class order = order of the labels as strings: the convention of scikit-learn's LabelBinarizer, which
    # scorers that take probability columns without names (e.g. log_loss(labels=...)) assume
    order = sorted(range(len(values)), key=lambda i: str(values[i]))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    classes = [values[i].item() if hasattr(values[i], "item") else values[i] for i in order]
    return rank[codes].astype(np.int64), classes
