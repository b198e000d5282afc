"""SQL sources: a table or a SELECT behind a SQLAlchemy URL, read in fixed-size chunks.

`data.path` is the database URL (`sqlite:///file.db`, `postgresql+psycopg2://user@host/db`), with
`data.query` (a SELECT) or `data.table` (a table name). Rows are fetched through a server-side cursor
(SQLAlchemy `stream_results` + `yield_per`: a named cursor on PostgreSQL, the incremental cursor on
SQLite), so the client holds one chunk at a time whatever the result size. Each chunk becomes a pyarrow
RecordBatch with column types fixed by the first chunk, like the CSV scan: integers as float64 (a later
chunk may hold a NULL), all-NULL columns as strings, NUMERIC/DECIMAL as float64.

The database password never leaves the process: every message, log line and manifest field uses the
masked URL. The data hash (`sha256`) covers the masked URL, the query and every row streamed, as the
Arrow IPC bytes of each chunk, in result order.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automl.data.arrow import to_pandas
from automl.errors import UserError
from automl.urls import normalize, redact

_SELECT = re.compile(r"^\s*(\(\s*)*(select|with)\b", re.IGNORECASE)
CHUNK_ROWS = 65_536  # rows per fetch: a few MB of Python tuples for a table of a dozen columns


def _one_line(e: BaseException) -> str:
    """A driver error without its SQL echo and traceback hints, and without any credentials in it."""
    msg = str(getattr(e, "orig", None) or e).strip().splitlines()
    return redact(msg[0] if msg else type(e).__name__)[:200]


@dataclass
class SqlSource:
    url: str
    query: str
    table: str = ""
    field_name: str = "data.path"
    types: dict[str, Any] | None = None  # arrow type per column, fixed by the first chunk
    int_columns: list[str] = field(default_factory=list)
    sha256: str = ""  # set when a pass over every row has finished
    _engine: Any = None

    @property
    def masked(self) -> str:
        return redact(self.url)

    @property
    def name(self) -> str:
        return self.table or "query"

    @property
    def what(self) -> str:
        return f"table '{self.table}'" if self.table else "data.query"

    def engine(self) -> Any:
        if self._engine is None:
            self._engine = _create_engine(self.url, self.field_name)
        return self._engine

    def count(self) -> int:
        with self._errors(), self.engine().connect() as conn:
            return int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM ({self.query}\n) AS automl_q").scalar() or 0)

    def batches(
        self, chunk_rows: int = CHUNK_ROWS, columns: dict[str, Any] | None = None, hash_rows: bool = True
    ) -> Generator[Any, None, None]:
        """RecordBatches over the whole result. `columns` (name -> arrow type, None = keep the first
        chunk's type) selects and types columns for predict; otherwise every column with the types fixed
        by the first chunk. A pass that reaches the end sets `sha256`."""
        import pyarrow as pa

        h = hashlib.sha256(f"{self.masked}\0{self.query}\0".encode()) if hash_rows and columns is None else None
        with self._errors(), self.engine().connect() as conn:
            # exec_driver_sql: the query goes to the driver as written (text() would read ':30' in a
            # time literal as a bind parameter)
            result = conn.execution_options(stream_results=True, yield_per=chunk_rows).exec_driver_sql(self.query)
            names = list(map(str, result.keys()))
            for rows in result.partitions(chunk_rows):
                batch = self._to_batch(names, rows, columns)
                if h is not None:
                    sink = pa.BufferOutputStream()
                    with pa.ipc.new_stream(sink, batch.schema) as w:
                        w.write_batch(batch)
                    h.update(sink.getvalue())
                yield batch
            if self.types is None:  # an empty result: the columns, no rows
                self.types = {n: pa.string() for n in names}
        if h is not None:
            self.sha256 = h.hexdigest()

    def schema_names(self) -> list[str]:
        with self._errors(), self.engine().connect() as conn:
            res = conn.exec_driver_sql(f"SELECT * FROM ({self.query}\n) AS automl_q WHERE 1 = 0")
            return list(map(str, res.keys()))

    def _to_batch(self, names: list[str], rows: list[Any], columns: dict[str, Any] | None) -> Any:
        import pyarrow as pa

        cols = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        arrays, out_names = [], []
        first = self.types is None and columns is None
        if first:
            self.types = {}
        # None only when `columns` fixes the types (then it is not read)
        types: dict[str, Any] = self.types if self.types is not None else {}
        for name, values in zip(names, cols, strict=True):
            if columns is not None and name not in columns:
                continue
            try:
                arr = pa.array(values, from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                # values arrow cannot type (UUIDs, a mix of numbers and text in SQLite): their text
                arr = pa.array([None if v is None else str(v) for v in values], type=pa.string())
            if columns is not None:
                want = columns[name]
            elif first:
                want = _stable_type(arr.type)
                types[name] = want
                if pa.types.is_integer(arr.type):
                    self.int_columns.append(name)
            else:
                want = types.get(name, arr.type)
            if want is not None and arr.type != want:
                try:
                    arr = arr.cast(want)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                    raise UserError(f"column '{name}'", f"changes type within {self.what}: {arr.type} where the "
                                    f"first rows held {want} ({str(e).splitlines()[0][:120]})",
                                    "Cast the column to one type in the query.") from None
            arrays.append(arr)
            out_names.append(name)
        return pa.RecordBatch.from_arrays(arrays, names=out_names)

    def _errors(self) -> Any:
        return _sql_errors(self)


def _stable_type(t: Any) -> Any:
    """A type later chunks can be cast to: ints may meet a NULL, NULL columns may meet text."""
    import pyarrow as pa

    if pa.types.is_integer(t) or pa.types.is_decimal(t) or pa.types.is_floating(t):
        return pa.float64()
    if pa.types.is_null(t):
        return pa.string()
    return t


@contextmanager
def _sql_errors(src: SqlSource) -> Iterator[None]:
    """Database errors as one-line UserErrors naming the field, password masked."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except SQLAlchemyError as e:
        where = ("data" if src.field_name == "data.path" else "-") + ("-table" if src.table else "-query")
        where = where.replace("data-", "data.")
        raise UserError(where, f"the query failed on {src.masked} ({_one_line(e)})",
                        "Fix the SQL (run it in the database's own client first).") from None


def _create_engine(url: str, field_name: str) -> Any:
    import sqlalchemy as sa
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        return sa.create_engine(normalize(url))
    except NoSuchModuleError as e:
        raise UserError(field_name, f"no SQLAlchemy dialect for {redact(url)} ({_one_line(e)})",
                        "Use a URL like sqlite:///file.db or postgresql+psycopg2://user@host/db.") from None
    except ModuleNotFoundError as e:
        raise UserError(field_name, f"the database driver '{e.name}' for {redact(url)} is not installed",
                        f"Install it (pip install {_driver_package(e.name)}) "
                        "or use another driver in the URL.") from None
    except ArgumentError as e:
        raise UserError(field_name, f"'{redact(url)}' is not a valid database URL ({_one_line(e)})",
                        "Use a URL like sqlite:///file.db or postgresql+psycopg2://user@host/db.") from None


def _driver_package(module: str | None) -> str:
    return {"psycopg2": "psycopg2-binary", "psycopg": "'psycopg[binary]'", "pymysql": "pymysql",
            "MySQLdb": "mysqlclient"}.get(module or "", module or "the driver")


def open_sql(url: str, query: str = "", table: str = "", field_name: str = "data.path") -> SqlSource:
    """A checked SQL source: the engine is made (dialect and driver), the database answers, the table
    exists or the query is a SELECT that runs."""
    qfield = "data.query" if field_name == "data.path" else "--query"
    tfield = "data.table" if field_name == "data.path" else "--table"
    if bool(query) == bool(table):
        raise UserError(qfield, f"a database URL needs exactly one of {qfield} (a SELECT) or {tfield} (a table name)"
                        + (", both are set" if query else ""),
                        f"Set {qfield}='SELECT ...' or {tfield}=<name>.")
    if query and not _SELECT.match(query):
        raise UserError(qfield, "must be a SELECT (or WITH ... SELECT) statement",
                        "Read the data with a SELECT; the engine never writes to the database.")
    _check_sqlite_file(url, field_name)
    src = SqlSource(url, query.strip().rstrip(";"), table, field_name)
    eng = src.engine()
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with eng.connect():
            pass
    except SQLAlchemyError as e:
        raise UserError(field_name, f"cannot connect to {src.masked} ({_one_line(e)})",
                        "Check host, port, database name and credentials (the password can also come from the "
                        "environment, e.g. PGPASSWORD).") from None
    if table:
        import sqlalchemy as sa

        schema, _, name = table.rpartition(".")
        with src._errors():
            insp = sa.inspect(eng)
            if not insp.has_table(name, schema=schema or None):
                known = insp.get_table_names(schema=schema or None)
                raise UserError(tfield, f"no table '{table}' in {src.masked}",
                                f"Use one of: {', '.join(known[:20]) or '(no tables)'}.")
        q = eng.dialect.identifier_preparer
        src.query = f"SELECT * FROM {q.quote_schema(schema) + '.' if schema else ''}{q.quote(name)}"
    else:
        src.schema_names()  # the query runs (errors name data.query) before any budget is spent
    return src


def _check_sqlite_file(url: str, field_name: str) -> None:
    """SQLite creates a missing database file on connect: say it is missing instead."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        u = make_url(url)
    except ArgumentError as e:
        raise UserError(field_name, f"'{redact(url)}' is not a valid database URL ({_one_line(e)})",
                        "Use a URL like sqlite:///file.db or postgresql+psycopg2://user@host/db.") from None
    db = u.database or ""
    is_sqlite_file = u.get_backend_name() == "sqlite" and db not in ("", ":memory:") and not db.startswith("file:")
    if is_sqlite_file and not Path(db).expanduser().is_file():
        raise UserError(field_name, f"database file '{db}' does not exist",
                        "Point the URL at an existing SQLite file (sqlite:///relative.db, sqlite:////absolute.db).")


def read_frame(src: SqlSource) -> Any:
    """The whole result as a pandas frame (small data), with the same types a scan gives."""
    import pyarrow as pa

    batches = list(src.batches())
    if not batches:
        raise UserError(src.field_name, f"{src.what} on {src.masked} returned no rows",
                        "Point to a table or query with rows.")
    return to_pandas(pa.Table.from_batches(batches), src.int_columns)
