"""`automl compare SWEEP_DIR`: compare.csv, compare.md and report.html over the jobs of a --multirun sweep."""
from __future__ import annotations

import argparse
from pathlib import Path

from automl.errors import UserError
from automl.io import SweepPaths, write_text
from automl.reporting.compare import render
from automl.reporting.sweep_rows import collect
from automl.reporting.sweep_report import write_sweep_report


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="automl compare", description="Compare the jobs of an automl --multirun sweep.")
    ap.add_argument("sweep_dir", help="the sweep folder (hydra.sweep.dir) holding one folder per job")
    a = ap.parse_args(argv)
    sweep = Path(a.sweep_dir)
    if not sweep.is_dir():
        raise UserError("SWEEP_DIR", f"'{a.sweep_dir}' is not a folder", "Pass the folder a --multirun sweep wrote.")
    paths = SweepPaths(sweep)
    df = collect(sweep)
    md = render(sweep, df)
    write_text(paths.compare_csv, df.to_csv(index=False))
    write_text(paths.compare_md, md)
    page = write_sweep_report(sweep)
    print(md)
    print(f"wrote {paths.compare_csv}, {paths.compare_md}" + (f" and {page}" if page else ""))
    return 0
