"""`automl predict`: score a CSV or Parquet file with model.onnx, in chunks, through the ONNX contract."""
from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from automl.errors import UserError

log = logging.getLogger("automl")


def _model_path(p: str) -> Path:
    path = Path(p)
    if path.is_dir():
        path = path / "model.onnx"
    if not path.exists():
        raise UserError("--model", f"'{p}' is not a model.onnx file or a run folder holding one",
                        "Point --model to outputs/<run>/model.onnx.")
    return path


def _chunks(path: str, rows: int, schema: list[dict[str, str]] | None = None) -> Iterator[pd.DataFrame]:
    """The input in chunks of about `rows` rows: only the model's columns are parsed, with the types the
    graph takes (numbers as float64, the rest as strings), so memory stays flat whatever the file size
    and no type guessed from the first block can fail on a later one."""
    import pyarrow as pa

    from automl.data.scan import PANDAS_NA, open_source

    src = open_source(path, "--data")
    want = [c["name"] for c in schema] if schema is not None else None
    if src.kind == "csv":
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
        block = max(1 << 14, min(16 << 20, rows * 100))  # bytes: about `rows` rows of a typical table
        # single-threaded: a threaded reader reads ahead of the slower scoring without bound (scan.py)
        try:
            reader = pcsv.open_csv(src.files[0], read_options=pcsv.ReadOptions(block_size=block, use_threads=False),
                                   convert_options=opts)
            for batch in reader:
                yield batch.to_pandas()
        except (pa.ArrowInvalid, UnicodeDecodeError) as e:
            raise _parse_error(str(e), path, header) from None
    else:
        import pyarrow.parquet as pq

        header = pq.ParquetFile(src.files[0]).schema_arrow.names
        _warn_extra(header, want)
        cols = [c for c in want or header if c in header]
        for f in src.files:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=rows, columns=cols):
                yield batch.to_pandas()


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


def predict_file(model: str, data: str, out: str, chunk_rows: int = 100_000) -> int:
    from automl.export.contract import class_labels, feeds_from_frame, input_schema
    from automl.export.onnx import session

    mpath = _model_path(model)
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
        for i, chunk in enumerate(_chunks(data, chunk_rows, schema)):
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
            total += len(frame)
            if out_path.suffix.lower() == ".parquet":
                import pyarrow as pa
                import pyarrow.parquet as pq

                table = pa.Table.from_pandas(frame, preserve_index=False)
                writer = writer or pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
            else:
                frame.to_csv(tmp, mode="w" if i == 0 else "a", header=i == 0, index=False)
        if writer is not None:
            writer.close()
        if total == 0:
            raise UserError("--data", f"file '{data}' has no data rows", "Send at least one row.")
        for col, (n, example) in unseen.items():
            log.warning("column '%s': %d row(s) hold categories not seen in training (e.g. %r); they are "
                        "scored as an unknown level", col, n, example)
        os.replace(tmp, out_path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return total


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="automl predict", description="Score rows with an automl model.onnx.")
    ap.add_argument("--model", required=True, help="model.onnx, or the run folder that holds it")
    ap.add_argument("--data", help="CSV or Parquet file with the raw feature columns (a run on several tables: "
                    "the new target table)")
    ap.add_argument("--tables", nargs="+", metavar="NAME=PATH",
                    help="a run on several tables: the raw tables (e.g. sessions=s.csv transactions=t.csv); "
                         "aggregates are recomputed with the run's saved definitions; unnamed tables use the "
                         "training paths")
    ap.add_argument("--out", required=True, help="where to write predictions (.csv or .parquet)")
    ap.add_argument("--chunk-rows", type=int, default=100_000, help="rows scored per chunk (memory bound)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from automl.data.relational import maybe_predict_tables  # a run on several tables: aggregates first

    n = maybe_predict_tables(a.model, a.tables, a.data, a.out, a.chunk_rows)
    if n is None:
        n = predict_file(a.model, a.data, a.out, a.chunk_rows)
    print(f"wrote {n} predictions to {a.out}")
    return 0
