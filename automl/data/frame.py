"""A caller's pandas DataFrame as a run's data file (`automl.fit(frame, ...)`).

The run reads its rows from a file like any other run: the study can resume, local workers and
`automl worker` read the same rows, and the manifest's data SHA-256 covers them. The frame is written a
slice at a time, so no second whole copy of a large frame is ever held in memory.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from automl.errors import UserError

CHUNK_ROWS = 65_536  # rows converted to Arrow and written at a time (one Parquet row group each)


def check_frame_columns(frame: pd.DataFrame) -> None:
    """Column names become the model's input names: strings, each once."""
    bad = [c for c in frame.columns if not isinstance(c, str)]
    if bad:
        raise UserError(f"column {bad[0]!r}", "column names must be strings (they name the model's inputs)",
                        "Rename the columns, e.g. frame.columns = frame.columns.astype(str).")
    dup = frame.columns[frame.columns.duplicated()]
    if len(dup):
        raise UserError(f"column '{dup[0]}'", "appears more than once", "Give every column its own name.")


def frame_schema(frame: pd.DataFrame) -> Any:
    """The frame's Arrow schema without converting it: typed columns from an empty slice, object columns
    (strings, mixed) by scanning their values (pyarrow's own inference converts a whole column to learn
    its type, a copy the size of the column)."""
    import pyarrow as pa

    schema = pa.Schema.from_pandas(frame.iloc[:0], preserve_index=False)
    for i, name in enumerate(frame.columns):
        if pd.api.types.is_object_dtype(frame.dtypes.iloc[i]):
            schema = schema.set(i, pa.field(name, pa.infer_type(frame.iloc[:, i].to_numpy(), from_pandas=True)))
    return schema


def write_frame(frame: pd.DataFrame, path: Path, chunk_rows: int = CHUNK_ROWS) -> None:
    """`frame` (its columns; the index is not data) as a Parquet file at `path`, written atomically.

    The Arrow schema is inferred from the whole frame column by column (an object column that is empty
    in the first slice still gets the type of its values), then each slice is converted and written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    check_frame_columns(frame)
    if len(frame) == 0:
        raise UserError("data", "the frame has no rows", "Pass a DataFrame with data rows.")
    try:
        schema = frame_schema(frame)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
        raise _unusable(e, _failing_column(frame)) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for i in range(0, len(frame), chunk_rows):
                try:
                    part = pa.Table.from_pandas(frame.iloc[i:i + chunk_rows], schema=schema, preserve_index=False)
                except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
                    raise _unusable(e) from None
                writer.write_table(part)
                del part
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _failing_column(frame: pd.DataFrame) -> str:
    """The first column whose type pyarrow cannot infer (only looked for once inference has failed)."""
    import pyarrow as pa

    for c in frame.columns:
        try:
            pa.Schema.from_pandas(frame[[c]], preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            return str(c)
    return ""


def _unusable(e: Exception, column: str = "") -> UserError:
    """pyarrow's "Conversion failed for column x with type object" as the engine's one-line error."""
    import re

    msg = str(e).splitlines()[0][:200]
    m = re.search(r"for column (.+?) with type", msg)
    column = column or (m.group(1) if m else "")
    return UserError(f"column '{column}'" if column else "data", f"cannot be stored as one column type ({msg})",
                     "Give the column one type, e.g. frame[col] = frame[col].astype(str).")
