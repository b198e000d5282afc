"""`automl predict`: score a CSV or Parquet file with model.onnx, in chunks, through the ONNX contract."""
from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automl.data.arrow import PANDAS_NA
from automl.data.relational import compute_from_run, read_layout
from automl.data.source import open_source
from automl.errors import UserError
from automl.export.contract import class_labels, conformal_columns, feeds_from_frame, input_schema
from automl.export.onnx import session
from automl.io import RunPaths
from automl.memory import release_freed
from automl.urls import is_url, redact

log = logging.getLogger("automl")
PROGRESS_ROWS = 1_000_000  # a progress line each time this many more rows are scored
CSV_BLOCK_BYTES = 1 << 20


def model_path(p: str) -> Path:
    """The model.onnx that --model names: the file itself, or the run folder holding it."""
    path = Path(p)
    if path.is_dir():
        path = RunPaths(path).model
    if not path.exists():
        raise UserError("--model", f"'{p}' is not a model.onnx file or a run folder holding one",
                        "Point --model to outputs/<run>/model.onnx.")
    return path


def _chunks(path: str, rows: int, schema: list[dict[str, str]] | None = None, query: str = "",
            table: str = "") -> Iterator[pd.DataFrame]:
    """The input in chunks of exactly `rows` rows (the last one shorter): only the model's columns are
    parsed, with the types the graph takes (numbers as float64, the rest as strings), so memory stays flat
    whatever the file size and no type guessed from the first block can fail on a later one."""
    for part in _exact(_batches(path, rows, schema, query, table), rows):
        yield part.to_pandas()


def _exact(batches: Iterator[Any], rows: int) -> Iterator[Any]:
    """Arrow batches of any size regrouped into tables of exactly `rows` rows (zero-copy slices). Readers
    give uneven batches (a 256k-row Parquet group in 100k, 100k and 56k; CSV blocks by bytes): equal
    chunks keep every later allocation the size of the first, which the allocators then reuse."""
    import pyarrow as pa

    buf: list[Any] = []
    held = 0
    for b in batches:
        if b.num_rows == 0:
            continue
        buf.append(b)
        held += b.num_rows
        while held >= rows:
            t = pa.Table.from_batches(buf)
            yield t.slice(0, rows)
            rest = t.slice(rows)
            buf, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(buf)


def _batches(path: str, rows: int, schema: list[dict[str, str]] | None, query: str,
             table: str) -> Iterator[Any]:
    """The input's record batches, as the reader of its format gives them."""
    import pyarrow as pa

    src = open_source(path, "--data", query, table)
    want = [c["name"] for c in schema] if schema is not None else None
    if src.kind == "sql":
        yield from _sql_batches(src.sql, rows, schema)
    elif src.kind == "csv":
        import pyarrow.csv as pcsv

        types = {c["name"]: pa.float64() if c["dtype"] == "float32" else pa.string() for c in schema or []}
        try:
            header = next(pcsv.open_csv(src.files[0], read_options=pcsv.ReadOptions(block_size=1 << 16))).schema.names
        except StopIteration:
            header = []
        except (pa.ArrowInvalid, UnicodeDecodeError) as e:
            raise UserError("--data", f"file '{path}' cannot be read as CSV ({str(e).splitlines()[0][:160]})",
                            "Send UTF-8 CSV with a header row, or Parquet.") from None
        _warn_extra(header, want)
        opts = pcsv.ConvertOptions(column_types=types, include_columns=[c for c in want or header if c in header],
                                   strings_can_be_null=True, null_values=PANDAS_NA)
        # small blocks, regrouped to `rows` by _exact: the streaming reader reads a dozen or so blocks ahead
        # of the consumer even single-threaded (10 MB blocks held 130-170 MB of arrow memory, 1 MB blocks
        # 20-30 MB); single-threaded, since a threaded reader reads ahead without bound (scan.py)
        try:
            reader = pcsv.open_csv(src.files[0], read_options=pcsv.ReadOptions(block_size=CSV_BLOCK_BYTES,
                                                                               use_threads=False),
                                   convert_options=opts)
            yield from reader
        except (pa.ArrowInvalid, UnicodeDecodeError) as e:
            raise _parse_error(str(e), path, header) from None
    else:
        import pyarrow.parquet as pq

        header = pq.ParquetFile(src.files[0]).schema_arrow.names
        _warn_extra(header, want)
        cols = [c for c in want or header if c in header]
        for f in src.files:
            # pre_buffer=False: with pre-buffering (pyarrow's default) the reader keeps every column chunk
            # it has read cached until it is closed, so memory grew with the file (+7 MB per million rows)
            yield from pq.ParquetFile(f, pre_buffer=False).iter_batches(batch_size=rows, columns=cols)


def _sql_batches(sql: Any, rows: int, schema: list[dict[str, str]] | None) -> Iterator[Any]:
    """A query's rows in chunks through a server-side cursor; only the model's columns are fetched
    (the query is wrapped in SELECT <columns> FROM (...)), typed as the graph takes them."""
    import pyarrow as pa

    names = sql.schema_names()
    want = [c["name"] for c in schema] if schema is not None else names
    _warn_extra(names, want)
    keep = [c for c in want if c in names]
    if keep and len(keep) < len(names):
        q = sql.engine().dialect.identifier_preparer
        sql.query = f"SELECT {', '.join(q.quote(c) for c in keep)} FROM ({sql.query}\n) AS automl_q"
    # numbers as float64, dates as the database gives them (feeds_from_frame converts), the rest as text
    types = {c["name"]: pa.float64() if c["dtype"] == "float32" else None if c["dtype"] == "float64"
             else pa.string() for c in schema or [] if c["name"] in names}
    yield from sql.batches(rows, columns=types or {c: None for c in keep}, hash_rows=False)


def _parse_error(msg: str, path: str, header: list[str]) -> UserError:
    """pyarrow's "In CSV column #2: Row #5: CSV conversion error to double: invalid value 'x'" as the
    engine's one-line error naming the column."""
    import re

    m = re.search(r"CSV column #(\d+).*conversion error to double: invalid value '(.*)'", msg)
    if m and int(m.group(1)) < len(header):
        return UserError(f"column '{header[int(m.group(1))]}'", f"must be numeric, but holds {m.group(2)!r}",
                         "Send numbers (or leave the value empty for missing).")
    return UserError("--data", f"file '{path}' cannot be parsed ({msg.splitlines()[0][:200]})",
                     "Fix the value named in the message (numbers in numeric columns) or send Parquet.")


def _warn_extra(header: list[str], want: list[str] | None) -> None:
    extra = [c for c in header if want is not None and c not in want]
    if extra:
        log.warning("ignoring %d column(s) the model does not use: %s", len(extra), ", ".join(extra[:10]))


def predict_file(model: str, data: str, out: str, chunk_rows: int = 100_000, query: str = "",
                 table: str = "") -> int:

    mpath = model_path(model)
    sess = session(mpath.read_bytes())
    meta = sess.get_modelmeta().custom_metadata_map
    if "input_schema" not in meta:
        raise UserError("--model", f"'{mpath}' was not written by automl (no input_schema metadata)",
                        "Use a model.onnx from an automl run folder.")
    schema = input_schema(meta)
    classes = class_labels(meta)
    known = {c: set(v) for c, v in json.loads(meta.get("categories", "{}")).items()}
    unseen: dict[str, tuple[int, str]] = {}
    names = [o.name for o in sess.get_outputs()]
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp")
    os.close(fd)
    total = 0
    writer = None
    try:
        for i, chunk in enumerate(_chunks(data, chunk_rows, schema, query, table)):
            feeds = feeds_from_frame(chunk, schema)
            for col, levels in known.items():
                vals = feeds[col].ravel()
                new = vals[(vals != "") & ~np.isin(vals, list(levels))]
                if len(new):
                    n, example = unseen.get(col, (0, str(new[0])))
                    unseen[col] = (n + len(new), example)
            res = dict(zip(names, sess.run(None, feeds), strict=True))
            frame = pd.DataFrame({"prediction": np.asarray(res["label"]).reshape(-1)})
            if classes is not None:
                proba = np.asarray(res["probabilities"])
                for j, c in enumerate(classes):
                    frame[f"proba_{c}"] = proba[:, j]
            for col, values in conformal_columns(res, classes).items():
                frame[col] = values
            if (total + len(frame)) // PROGRESS_ROWS > total // PROGRESS_ROWS:
                log.info("scored %d rows", total + len(frame))
            total += len(frame)
            if out_path.suffix.lower() == ".parquet":
                import pyarrow as pa
                import pyarrow.parquet as pq

                part = pa.Table.from_pandas(frame, preserve_index=False)
                writer = writer or pq.ParquetWriter(tmp, part.schema)
                writer.write_table(part)
            else:
                frame.to_csv(tmp, mode="w" if i == 0 else "a", header=i == 0, index=False)
            del chunk, feeds, res, frame
            release_freed()  # what this chunk freed goes back to the OS before the next one allocates
        if writer is not None:
            writer.close()
        if total == 0:
            what = f"the query on {redact(data)}" if is_url(data) else f"file '{data}'"
            raise UserError("--data", f"{what} has no data rows", "Send at least one row.")
        for col, (n, example) in unseen.items():
            log.warning("column '%s': %d row(s) hold categories not seen in training (e.g. %r); they are "
                        "scored as an unknown level", col, n, example)
        os.replace(tmp, out_path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return total


def maybe_predict_tables(model: str, pairs: list[str] | None, data: str | None, out: str,
                         chunk_rows: int) -> int | None:
    """`automl predict` for a run on several tables: aggregates from raw tables, then the ONNX graph.

    --tables name=path replaces tables by name (others are read from their training paths); --data alone
    is the new target table. Returns None for a single-table run (the caller scores --data as is)."""
    run = RunPaths(model_path(model).parent)
    if not run.relational_layout.exists():
        if pairs is not None or data is None:
            raise UserError("--data", "is required: this model was trained on one table",
                            "Pass --data FILE (--tables is for runs on several tables).")
        return None
    pairs = list(pairs or [])
    if data is not None:
        pairs.append(f"{read_layout(run.root)['target_table']}={data}")
    paths = {}
    for p in pairs:
        name, sep, path = p.partition("=")
        if not sep or not name or not path:
            raise UserError("--tables", f"'{p}' is not NAME=PATH", "Write e.g. --tables sessions=new_sessions.csv.")
        paths[name] = path
    flat = compute_from_run(run.root, paths)
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "model_frame.parquet"
        flat.to_parquet(f, index=False)
        return predict_file(str(run.model), str(f), out, chunk_rows)

