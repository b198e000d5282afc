"""`automl predict`: score rows with an automl model.onnx (a file, a database query or a run's raw tables)."""
from __future__ import annotations

import argparse
import logging

from automl.predict import maybe_predict_tables, predict_file


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="automl predict", description="Score rows with an automl model.onnx.")
    ap.add_argument("--model", required=True, help="model.onnx, or the run folder that holds it")
    ap.add_argument("--data", help="CSV or Parquet file (or folder of Parquet files) with the raw feature columns, "
                    "or a database URL with --query/--table (a run on several tables: the new target table)")
    ap.add_argument("--query", default="", help="with a database URL in --data: the SELECT whose rows are scored")
    ap.add_argument("--table", default="", help="with a database URL in --data: the table whose rows are scored")
    ap.add_argument("--tables", nargs="+", metavar="NAME=PATH",
                    help="a run on several tables: the raw tables (e.g. sessions=s.csv transactions=t.csv); "
                         "aggregates are recomputed with the run's saved definitions; unnamed tables use the "
                         "training paths")
    ap.add_argument("--out", required=True, help="where to write predictions (.csv or .parquet)")
    ap.add_argument("--chunk-rows", type=int, default=100_000, help="rows scored per chunk (memory bound)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # a run on several tables recomputes its aggregates first; any other run scores the rows as they are
    n = maybe_predict_tables(a.model, a.tables, a.data, a.out, a.chunk_rows)
    if n is None:
        n = predict_file(a.model, a.data, a.out, a.chunk_rows, a.query, a.table)
    print(f"wrote {n} predictions to {a.out}")
    return 0
