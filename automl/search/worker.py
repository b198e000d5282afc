"""`automl worker --storage URL --study NAME`: join a running search from another process or machine.

The worker reads what the driver published in the study (config, data sha, fingerprint, deadline),
rebuilds the search data exactly (it refuses to join if anything differs), then runs the same trial
loop as the driver until the trial tickets are used up, the deadline leaves no room, or the driver
ends the search. The driver alone refits and exports.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import time
import typing
from pathlib import Path
from typing import Any

from automl.errors import UserError

log = logging.getLogger("automl")


def from_dict(cls: type, d: dict[str, Any]) -> Any:
    """Rebuild a (nested) config dataclass from its JSON form."""
    hints = typing.get_type_hints(cls)
    kw = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue
        t, v = hints[f.name], d[f.name]
        if dataclasses.is_dataclass(t):
            v = from_dict(t, v)
        elif isinstance(t, type) and issubclass(t, __import__("enum").Enum):
            v = t(v)
        kw[f.name] = v
    return cls(**kw)


def search_data(cfg: Any, spec: dict[str, Any], data_path: str, n_jobs: int) -> Any:
    """The driver's SearchData, rebuilt with the same steps as automl/run.py (checked by fingerprint)."""
    import numpy as np

    from automl.data.load import read_table
    from automl.data.roles import infer_schema, to_model_frame
    from automl.data.split import cv_folds, holdout_split
    from automl.estimators import REGISTRY
    from automl.evaluation.metrics import get_metric
    from automl.preprocessing.imbalance import search_imbalance
    from automl.preprocessing.pipeline import indicator_columns
    from automl.run import prepare_target
    from automl.search.objective import SearchData

    target, task = cfg.task.target, spec["task"]
    df = read_table(data_path)
    df = df[df[target].notna()].reset_index(drop=True)
    y_all, classes = prepare_target(df, target, task)
    schema = infer_schema(df, target, list(cfg.data.id_columns), list(cfg.data.drop_columns))
    X_all = to_model_frame(df, schema)
    tr, _ = holdout_split(y_all, task, cfg.search.holdout, cfg.seed)
    X, y = X_all.iloc[tr].reset_index(drop=True), y_all[tr]
    families = [k for k in cfg.estimators.include if k not in cfg.estimators.exclude and task in REGISTRY.get(k).tasks]
    metric = get_metric(spec["metric"])
    return SearchData(X=X, y=np.asarray(y), folds=cv_folds(y, task, spec["n_folds"], cfg.seed), schema=schema,
                      missing_numeric=indicator_columns(X, schema.names("numeric")), task=task,
                      metric=metric, n_classes=len(classes) if classes is not None else 0,
                      seed=cfg.seed, families=families, space_dir=cfg.search.space_dir, n_jobs=n_jobs,
                      imbalance=search_imbalance(cfg.search.imbalance, task, metric, np.asarray(y)),
                      tune_threshold=cfg.task.tune_threshold)


def _load_spec(storage_spec: str, study_name: str, wait_s: float) -> dict[str, Any]:
    """Wait for the driver: its database tables, its study, and the spec it publishes."""
    from automl.search.coordination import SPEC_ATTR
    from automl.search.storage import open_storage

    end = time.time() + wait_s
    why = ""
    while True:
        try:
            storage = open_storage(storage_spec, create_tables=False)
            sid = storage.get_study_id_from_name(study_name)
            spec = storage.get_study_user_attrs(sid).get(SPEC_ATTR)
            if spec:
                return spec
            why = "the study exists but its driver has not published the search yet"
        except KeyError:
            why = f"no study named '{study_name}'"
        except UserError as e:
            why = e.rule if hasattr(e, "rule") else str(e)
        if time.time() >= end:
            raise UserError("--study", f"cannot join '{study_name}' after waiting {wait_s:.0f}s: {why}",
                            "Start the driver first (automl search.storage=URL search.study_name=NAME ...) "
                            "or pass --wait SECONDS.")
        time.sleep(1.0)


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

    from automl.config.schema import RunConfig
    from automl.data.load import file_sha256
    from automl.search import coordination as coord
    from automl.search.storage import is_url

    if not is_url(a.storage) and not Path(a.storage).is_file():
        raise UserError("--storage", f"'{a.storage}' is neither a database URL nor a journal file",
                        "Pass the driver's search.storage URL or <run folder>/study.journal.")
    spec = _load_spec(a.storage, a.study, a.wait)
    cfg = from_dict(RunConfig, spec["config"])
    data_path = a.data or cfg.data.path
    if cfg.data.query or cfg.data.table:
        raise UserError("--storage", "the driver reads its data from a database (data.query / data.table); "
                        "automl worker joins runs on a CSV or Parquet file only",
                        "Export the query to Parquet and run the driver on that file.")
    if not Path(data_path).is_file():
        raise UserError("--data", f"the driver's data file {data_path} is not on this machine",
                        "Pass --data with the path of the same file here.")
    if file_sha256(data_path) != spec["data_sha256"]:
        raise UserError("--data", f"{data_path} differs from the driver's data (sha256)", "Use the same file.")

    from functools import partial

    from automl.export.converters import register_converters
    from automl.reporting.progress import log_trial
    from automl.run import _trial_memory_mb
    from automl.search.budget import Budget
    from automl.search.loop import run_search
    from automl.search.study import make_study

    data = search_data(cfg, spec, data_path, a.n_jobs or (os.cpu_count() or 1))
    if coord.fingerprint(data) != spec["fingerprint"]:
        raise UserError("--storage", "the search data rebuilt here differs from the driver's (rows, folds or "
                        "search spaces)", "Install the same automl version and search_spaces as the driver.")
    register_converters()
    budget = Budget(start=spec["deadline"] - spec["time_s"], time_s=spec["time_s"], n_trials=spec["tickets"],
                    trial_time_s=cfg.budget.trial_time_s, trial_memory_mb=_trial_memory_mb(cfg),
                    refit_full=cfg.export.refit_full)
    study = make_study(Path(a.storage), a.study, data.metric.direction, cfg.search.sampler,
                       cfg.seed + os.getpid() % 10_000, cfg.search.n_startup_trials, cfg.search.multivariate,
                       cfg.search.pruner, constant_liar=True, storage_url=a.storage if is_url(a.storage) else "",
                       heartbeat_s=cfg.search.heartbeat_s)
    oof = Path(a.oof_dir) if a.oof_dir else Path(spec["run_dir"]) / "oof"
    oof_dir = oof if a.oof_dir or os.access(oof.parent, os.W_OK) else None
    log.info("joined study '%s' as %s: %d tickets, %.0fs left", a.study, coord.worker_id(), spec["tickets"],
             budget.left())
    res = run_search(study, data, budget, on_trial=partial(log_trial, data.metric.name), oof_dir=oof_dir,
                     tickets=spec["tickets"] > 0)
    log.info("worker done: %d complete, %d failed, %d pruned (%s)", res.completed, res.failed, res.pruned,
             res.stopped_because)
    return 0
