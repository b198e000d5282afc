"""A worker joining a running search (`automl worker`): the driver's published choices in, the same
prepare recipe as the driver, then the same trial loop until the tickets, the deadline or the driver
end the search. The driver alone refits and exports."""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from automl.config.schema import RunConfig
from automl.cores import usable_cores
from automl.data.load import file_sha256
from automl.errors import UserError
from automl.memory import resolve_budget, trial_memory_mb
from automl.search import coordination as coord
from automl.search.budget import Budget
from automl.search.loop import run_search
from automl.search.study import search_study
from automl.search.worker import from_dict, load_spec
from automl.stages.prepare import prepare_worker
from automl.urls import is_url

log = logging.getLogger("automl")


def join(storage: str, study_name: str, data: str = "", oof_dir: str = "", n_jobs: int = 0, wait_s: float = 30.0,
         log_trial: Callable[[str, dict[str, Any]], Any] | None = None) -> int:
    """Join study `study_name` in `storage` (a database URL or a run folder's study.journal) as one more
    worker; returns the exit code. `log_trial(metric_name, record)` is called once per finished trial."""
    if not is_url(storage) and not Path(storage).is_file():
        raise UserError("--storage", f"'{storage}' is neither a database URL nor a journal file",
                        "Pass the driver's search.storage URL or <run folder>/study.journal.")
    spec = load_spec(storage, study_name, wait_s)
    cfg = from_dict(RunConfig, spec["config"])
    data_path = data or cfg.data.path
    if cfg.data.query or cfg.data.table:
        raise UserError("--storage", "the driver reads its data from a database (data.query / data.table); "
                        "automl worker joins runs on a CSV or Parquet file only",
                        "Export the query to Parquet and run the driver on that file.")
    if not Path(data_path).is_file():
        raise UserError("--data", f"the driver's data file {data_path} is not on this machine",
                        "Pass --data with the path of the same file here.")
    if file_sha256(data_path) != spec["data_sha256"]:
        raise UserError("--data", f"{data_path} differs from the driver's data (sha256)", "Use the same file.")

    search_data = prepare_worker(cfg, spec["task"], spec["metric"], spec["n_folds"], data_path,
                                 n_jobs or usable_cores())
    if coord.fingerprint(search_data) != spec["fingerprint"]:
        raise UserError("--storage", "the search data rebuilt here differs from the driver's (rows, folds or "
                        "search spaces)", "Install the same automl version and search_spaces as the driver.")
    budget = Budget(start=spec["deadline"] - spec["time_s"], time_s=spec["time_s"], n_trials=spec["tickets"],
                    trial_time_s=cfg.budget.trial_time_s,
                    trial_memory_mb=trial_memory_mb(cfg.budget.trial_memory_mb, resolve_budget(cfg.budget.memory_mb)),
                    refit_full=cfg.export.refit_full)
    # the driver's directions, sampler and constrained sampling (search_study), this worker's own seed
    study = search_study(cfg, Path(storage), search_data.metric.direction, cfg.seed + os.getpid() % 10_000, True,
                         storage if is_url(storage) else "", search_data.metric.name)
    oof = Path(oof_dir) if oof_dir else Path(spec["run_dir"]) / "oof"
    writable_oof = oof if oof_dir or os.access(oof.parent, os.W_OK) else None
    log.info("joined study '%s' as %s: %d tickets, %.0fs left", study_name, coord.worker_id(), spec["tickets"],
             budget.left())
    on_trial = partial(log_trial, search_data.metric.name) if log_trial else None
    res = run_search(study, search_data, budget, on_trial=on_trial, oof_dir=writable_oof,
                     tickets=spec["tickets"] > 0)
    log.info("worker done: %d complete, %d failed, %d pruned (%s)", res.completed, res.failed, res.pruned,
             res.stopped_because)
    return 0
