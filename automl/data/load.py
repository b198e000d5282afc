"""Read a table (CSV or Parquet) into a whole-frame pandas DataFrame.

The search works on data known to fit in memory here; `automl predict` streams instead
(see automl/predict.py).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pandas as pd

from automl.data.source import check_readable, iter_batches, open_source
from automl.errors import UserError


def read_table(path: str, field: str = "data.path") -> pd.DataFrame:
    if Path(path).expanduser().is_dir():  # a folder of Parquet files (one table)
        return _read_folder(path, field)
    p = check_readable(path, field)
    try:
        if p.suffix.lower() == ".csv":
            df = pd.read_csv(p, low_memory=False, encoding="utf-8")
        else:
            df = pd.read_parquet(p)
    except UnicodeDecodeError as e:
        raise UserError(field, f"file '{path}' is not UTF-8 text (byte {e.start}: {e.reason})",
                        "Re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8).") from None
    except pd.errors.EmptyDataError:
        raise UserError(field, f"file '{path}' has no columns",
                        "Point to a file with a header row and data rows.") from None
    except (pd.errors.ParserError, ValueError, OSError) as e:
        raise UserError(field, f"file '{path}' cannot be parsed ({str(e).splitlines()[0][:160]})",
                        "Check the delimiter and quoting, or convert the file to Parquet.") from None
    if p.suffix.lower() == ".csv":
        _check_unique_header(p, field)
    df.columns = [str(c) for c in df.columns]
    if len(df) == 0:
        raise UserError(field, f"file '{path}' has a header but no data rows", "Point to a file with data rows.")
    return df


def _read_folder(path: str, field: str) -> pd.DataFrame:
    import pyarrow as pa

    src = open_source(path, field)
    df = pa.Table.from_batches(list(iter_batches(src, field))).to_pandas()
    df.columns = [str(c) for c in df.columns]
    if len(df) == 0:
        raise UserError(field, f"folder '{path}' holds no data rows", "Point to files with data rows.")
    return df


def _check_unique_header(p: Path, field: str) -> None:
    import csv

    with open(p, newline="", encoding="utf-8", errors="replace") as fh:
        header = next(csv.reader(fh), [])
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise UserError(f"column '{name}'", "column names must be unique, but the header repeats it",
                            "Rename or drop the duplicate column in the file.")
        seen.add(name)


def source_sha256(src: Any, path: str) -> tuple[str, str]:
    """(hash, what it covers) for the manifest and the resumed-study check. A database has no file:
    its hash covers the masked URL, the query and every row, taken while the run streamed them."""
    if src is not None and src.kind == "sql":
        if not src.sql.sha256:  # no complete pass yet (cannot happen after a load, kept for safety)
            for _ in src.sql.batches():
                pass
        return src.sql.sha256, "SHA-256 of the masked URL, the query and every row streamed (Arrow IPC, result order)"
    return file_sha256(path), "SHA-256 of the file's bytes" if not Path(path).is_dir() else \
        "SHA-256 of the folder's file names and their SHA-256"


def file_sha256(path: str) -> str:
    if Path(path).is_dir():  # a folder: the hash of its files' names and hashes, in name order
        h = hashlib.sha256()
        src = open_source(path)
        for f in src.files:
            h.update(f"{f.relative_to(Path(path))}\0{file_sha256(str(f))}\n".encode())
        return h.hexdigest()
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
