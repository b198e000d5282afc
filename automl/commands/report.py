"""`automl report RUN_DIR`: (re)build report.html of a run folder, or the comparison page of a sweep."""
from __future__ import annotations

import argparse
from pathlib import Path

from automl.errors import UserError
from automl.io import RunPaths, SweepPaths, write_text
from automl.reporting.report import build_report
from automl.reporting.sweep_report import build_sweep_report


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="automl report", description="(Re)build report.html of a run folder, or "
                                 "the comparison page of a --multirun sweep folder.")
    ap.add_argument("run_dir", metavar="RUN_DIR", help="a run folder, or a sweep folder of run folders")
    a = ap.parse_args(argv)
    run_dir = Path(a.run_dir)
    paths, sweep = RunPaths(run_dir), SweepPaths(run_dir)
    if not paths.manifest.exists() and sweep.jobs():
        write_text(sweep.report, build_sweep_report(run_dir))
        print(sweep.report)
        return 0
    if not paths.manifest.exists():
        raise UserError("RUN_DIR", f"'{run_dir}' holds no {paths.manifest.name} (nor job folders with one)",
                        "Point to an automl run folder or a --multirun sweep folder.")
    write_text(paths.report, build_report(run_dir))
    print(paths.report)
    return 0
