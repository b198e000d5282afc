"""Arrow to pandas as the rest of the engine expects it: what `pandas.read_csv` would have given.

Every reader (CSV and Parquet scans, SQL chunks, predict) goes through Arrow; these are the conventions
that make a streamed table mean what a loaded one means.
"""
from __future__ import annotations

from typing import Any

import numpy as np

# what pandas.read_csv reads as missing, so a scanned CSV means what a loaded one means
PANDAS_NA = [
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
]


def to_pandas(table: Any, int_cols: list[str]) -> Any:
    """A pyarrow table as pandas.read_csv would give it: integer columns (read as float64, since a later
    block may hold a missing value) without missing values back to int64, string column names."""
    df = table.to_pandas()
    for c in int_cols:
        s = df[c]
        if s.notna().all() and np.all(np.mod(s.to_numpy(), 1) == 0):
            df[c] = s.astype(np.int64)
    df.columns = [str(c) for c in df.columns]
    return df.reset_index(drop=True)
