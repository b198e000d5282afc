"""`automl worker --storage URL --study NAME`: join a running search from another process or machine."""
from __future__ import annotations

import argparse
import logging

from automl.reporting.progress import log_trial
from automl.stages.join import join


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="automl worker", description="Join a running automl search as one more worker.")
    ap.add_argument("--storage", required=True,
                    help="the driver's search.storage URL, or its run folder's study.journal (same machine)")
    ap.add_argument("--study", default="automl", help="the driver's search.study_name (default: automl)")
    ap.add_argument("--data", default="", help="the data file on this machine, if its path differs from the driver's")
    ap.add_argument("--oof-dir", default="", help="where to write out-of-fold predictions (default: the run folder "
                    "if this machine sees it; ensembles only use trials whose predictions reach it)")
    ap.add_argument("--n-jobs", type=int, default=0, help="threads per trial (default: all cores)")
    ap.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the driver to publish the study")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][worker] %(message)s")
    logging.getLogger("automl").setLevel(logging.INFO)
    return join(a.storage, a.study, a.data, a.oof_dir, a.n_jobs, a.wait, log_trial=log_trial)
