"""A table to read: a CSV or Parquet file, a folder of Parquet files, or a database query, opened and
checked once, then read as pyarrow record batches in file (or result) order whatever its kind.

Readers above this (the whole-frame load, the one-pass scan, predict) never ask which kind it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automl.data.arrow import PANDAS_NA
from automl.data.sql import SqlSource, open_sql
from automl.errors import UserError
from automl.urls import is_url

# The CSV head the column types are inferred from (parsed from bytes read here, not by a streaming
# reader: that one starts reading dozens of blocks ahead the moment it opens)
BLOCK_BYTES = 8 << 20
# CSV block a streaming scan reads at a time. The streaming reader keeps dozens of blocks in flight
# even single-threaded (a 1.1 GB file: +400 MB of RSS with 8 MB blocks, +85 MB with 1 MB, +63 MB with
# 512 kB, at the same speed): the driver's peak under a small budget.memory_mb was this read-ahead
STREAM_BLOCK_BYTES = 1 << 20
SUPPORTED = (".csv", ".parquet", ".pq")


def check_readable(path: str, field: str = "data.path") -> Path:
    p = Path(path).expanduser()
    if not str(path):
        raise UserError(field, "no file given", f"Set {field}=<file.csv|file.parquet>.")
    if not p.exists():
        raise UserError(field, f"file '{path}' does not exist", f"Set {field} to an existing CSV or Parquet file.")
    if p.is_dir():
        raise UserError(field, f"'{path}' is a directory, not a file", f"Set {field} to a CSV or Parquet file.")
    if p.suffix.lower() not in SUPPORTED:
        raise UserError(field, f"'{p.suffix or p.name}' is not a supported format (csv, parquet)",
                        f"Convert the file or set {field} to a .csv or .parquet file.")
    try:
        with open(p, "rb") as fh:
            fh.read(1)
    except OSError as e:
        raise UserError(field, f"file '{path}' cannot be read ({e.strerror})",
                        "Fix the file permissions or point to a readable copy.") from None
    if p.stat().st_size == 0:
        raise UserError(field, f"file '{path}' is empty", "Point to a file with a header row and data rows.")
    return p


@dataclass
class Source:
    files: list[Path]
    kind: str  # csv | parquet | sql
    bytes: int  # on disk (0 for a database)
    sql: SqlSource | None = None  # when kind == "sql"

    @property
    def name(self) -> str:
        if self.sql is not None:
            return self.sql.name
        return self.files[0].name if len(self.files) == 1 else self.files[0].parent.name

    def sql_source(self) -> SqlSource:
        """The database reader of a kind == "sql" source."""
        assert self.sql is not None, "not a database source"
        return self.sql


def open_source(path: str, field_name: str = "data.path", query: str = "", table: str = "") -> Source:
    """A checked source: a file, a folder of Parquet files, or a database URL with a query or a table."""
    if is_url(path):
        return Source([], "sql", 0, open_sql(path, query, table, field_name))
    if query or table:
        where = ("data." if field_name == "data.path" else "--") + ("query" if query else "table")
        raise UserError(where, "is only read from a database",
                        f"Set {field_name} to a database URL (sqlite:///file.db, postgresql://user@host/db), "
                        "or leave it empty for a file.")
    p = Path(path).expanduser()
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in (".parquet", ".pq"))
        if not files:
            raise UserError(
                field_name,
                f"folder '{path}' holds no .parquet files",
                f"Set {field_name} to a CSV/Parquet file or a folder of Parquet files.",
            )
        return Source(files, "parquet", sum(f.stat().st_size for f in files))
    p = check_readable(path, field_name)
    return Source([p], "csv" if p.suffix.lower() == ".csv" else "parquet", p.stat().st_size)


def csv_column_types(src: Source) -> tuple[dict[str, Any], list[str]]:
    """(column types for the streaming CSV reader, the integer columns), fixed from the first block:
    integers are read as float64 (a later block may hold a missing value or a decimal), columns empty in
    the first block as strings. Without this, a type inferred from block one can fail on block fifty."""
    import pyarrow as pa

    schema = csv_head(src).schema
    types: dict[str, Any] = {}
    ints = [f.name for f in schema if pa.types.is_integer(f.type)]
    for f in schema:
        t = f.type
        if pa.types.is_integer(t):
            t = pa.float64()
        elif pa.types.is_null(t):
            t = pa.string()
        types[f.name] = t
    return types, ints


def csv_head(src: Source, nbytes: int = BLOCK_BYTES) -> Any:
    """The CSV's first `nbytes` (cut at the last whole line) parsed as a pyarrow Table, types inferred:
    bounded memory, whatever the file's size."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    with open(src.files[0], "rb") as fh:
        head = fh.read(nbytes)
        if len(head) == nbytes and fh.read(1):  # more follows: drop the partial last line
            head = head[: head.rfind(b"\n") + 1]
    return pcsv.read_csv(pa.BufferReader(head), read_options=pcsv.ReadOptions(use_threads=False),
                         convert_options=pcsv.ConvertOptions(strings_can_be_null=True, null_values=PANDAS_NA))


def iter_batches(
    src: Source,
    field_name: str = "data.path",
    column_types: dict[str, Any] | None = None,
    batch_rows: int = 262_144,
) -> Iterator[Any]:
    """pyarrow RecordBatches over the whole source, in file order."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if src.kind == "sql":  # the SQL reader raises its own one-line errors
        yield from src.sql_source().batches(min(batch_rows, 65_536))
        return
    try:
        if src.kind == "csv":
            types = column_types if column_types is not None else csv_column_types(src)[0]
            reader = pcsv.open_csv(
                src.files[0],
                read_options=pcsv.ReadOptions(block_size=STREAM_BLOCK_BYTES, use_threads=False),
                convert_options=pcsv.ConvertOptions(
                    column_types=types, strings_can_be_null=True, null_values=PANDAS_NA
                ),
            )
            # small blocks keep the read-ahead small; the consumer still gets batches of about
            # `batch_rows` (its per-batch work, not the parsing, dominated with 1 MB blocks)
            parts: list[Any] = []
            held = 0
            for batch in reader:
                parts.append(batch)
                held += batch.num_rows
                if held >= batch_rows:
                    yield pa.Table.from_batches(parts).combine_chunks().to_batches()[0]
                    parts, held = [], 0
            if parts:
                yield pa.Table.from_batches(parts).combine_chunks().to_batches()[0]
        else:
            first = None
            for f in src.files:
                # pre_buffer=False: a pre-buffering reader caches every column chunk it read until closed
                # (arrow memory grew by ~0.65 MB per 100k rows read, the whole file by the end)
                pf = pq.ParquetFile(f, pre_buffer=False)
                if first is None:
                    first = pf.schema_arrow
                for batch in pf.iter_batches(batch_size=batch_rows):
                    if batch.schema.names != first.names:
                        raise UserError(
                            field_name,
                            f"'{f.name}' has other columns than '{src.files[0].name}'",
                            "Put only files of one table in the folder.",
                        )
                    yield batch
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as e:
        raise UserError(
            field_name,
            f"'{src.name}' cannot be scanned ({str(e).splitlines()[0][:200]})",
            "Clean the column named in the message (one type per column), or convert the file to Parquet.",
        ) from None


def estimate(src: Source) -> tuple[int, float]:
    """(estimated rows, estimated pandas bytes per row), from Parquet metadata, the first CSV block, or a
    COUNT(*) and the first chunk of a query."""
    import pyarrow.parquet as pq

    if src.kind == "sql":
        it = src.sql_source().batches(hash_rows=False)
        first = next(it, None)
        it.close()  # the rest of the result is not fetched
    elif src.kind == "csv":
        first = csv_head(src)
    else:
        first = next(iter_batches(src), None)
    if first is None or first.num_rows == 0:
        raise UserError("data.path", f"'{src.name}' has no data rows", "Point to a file with data rows.")
    sample = first.slice(0, min(first.num_rows, 20_000))
    per_row = float(sample.to_pandas().memory_usage(deep=True).sum()) / sample.num_rows
    if src.kind == "sql":
        rows = src.sql_source().count()
    elif src.kind == "parquet":
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in src.files)
    else:
        rows = int(src.bytes / max(first.nbytes / first.num_rows, 1.0)) if first.num_rows else 0
        # arrow's in-memory size is close to the CSV bytes for numbers; refine with the first block's text size
        with open(src.files[0], "rb") as fh:
            head = fh.read(BLOCK_BYTES)
        n_lines = head.count(b"\n")
        if n_lines > 1:
            rows = int(src.bytes * (n_lines - 1) / len(head))
    return max(rows, 1), per_row
