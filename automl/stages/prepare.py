"""The prepare stage: load, validate, target, schema, profile, split. The driver and every joining worker
build their search data through the same functions here, so nothing restates a choice the other made."""
from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automl.config.schema import RunConfig
from automl.config.validate import resolve_task, validate_config
from automl.cores import usable_cores
from automl.data.large import load_for_run
from automl.data.load import read_table, source_sha256
from automl.data.profile import build_profile
from automl.data.relational import build_flat_frame, tables_sha256
from automl.data.roles import Schema, infer_schema, infer_task, to_model_frame
from automl.data.source import open_source
from automl.data.split import RANDOM, Structure, check_class_counts, cv_folds, holdout_split, inner_share
from automl.data.structure import check_columns, describe, structure_of, suspects
from automl.data.target import prepare_target
from automl.errors import UserError
from automl.estimators import REGISTRY
from automl.evaluation.metrics import CONSTRAINED, Metric, get_metric
from automl.export.contract import metadata
from automl.io import RunPaths, write_json
from automl.memory import MemoryBudget, process_mb, release_freed, resolve_budget
from automl.preprocessing.imbalance import search_imbalance
from automl.preprocessing.pipeline import indicator_columns
from automl.search.objective import SearchData
from automl.search.rung import rung_rows
from automl.version import __version__

log = logging.getLogger("automl")

# Up to this many cells (rows x columns) a trial is short and mostly per-trial overhead and
# single-threaded work: one worker per core gave 2.2x the trials of one 2-thread worker
# (medpar, 1196 rows, 40 s on 2 cores: 63 vs 28 completed).
AUTO_WORKERS_MAX_CELLS = 2_000_000
# LightGBM and XGBoost (with onnxmltools: ~7 MB) are loaded by the driver when the budget leaves more than
# this after it (they would take under a tenth of it): each of their trials is spared 25-40 ms of import.
# CatBoost is not: in the driver it holds ~19 MB (pages of its library every forked trial would map), the
# driver is the largest process of a run on small data (what GNU time's %M reports), and a trial that
# fits it imports it in ~20 ms (automl/estimators/catboost.py keeps its notebook widget out)
PRELOAD_ROOM_MB = 500.0
# seconds the driver takes to load the export stack (onnx, skl2onnx, onnxruntime, the converters) after the
# search: 0.72-0.73 s measured with scikit-learn, LightGBM and XGBoost loaded, beside a running test suite
STACK_LOAD_S = 1.0
DRIVER_PRELOAD = ("lightgbm", "xgboost")


@dataclass
class Prepared:
    """What the search and the final stage need from the data, and what the outputs report of it."""
    data: SearchData  # the search rows, their folds and everything a trial needs
    X_all: pd.DataFrame  # every row in memory as model input (drift reference, category levels)
    X_hold: pd.DataFrame
    y_hold: np.ndarray
    classes: list[Any] | None
    task: str
    metric_name: str
    schema: Schema
    profile: dict[str, Any]
    mem: MemoryBudget
    n_workers: int
    data_sha: str
    data_sha_of: str
    shape: tuple[int, int]  # of the frame as loaded (rows with a target, all columns)
    n_missing_target: int
    src: Any = None  # the opened source (file or SQL) of a one-table run
    sampled: Any = None  # data.large.Sampled when the data were scanned and sampled
    raw: pd.DataFrame | None = None  # the flat frame of a several-table run, for its end-to-end parity check
    hold_groups: np.ndarray | None = None  # data.group_column: the holdout rows' group codes
    timings: dict[str, float] = field(default_factory=dict)
    # the final refit is held to the trial memory limit, as the search's trials are (refit_memory_bound)
    memory_bound: bool = False


def refit_memory_bound(cfg: RunConfig, sampled: Any) -> bool:
    """Whether the final refit is held to the trial memory limit: with budget.memory_mb set, or on data too
    large to load that were scanned and sampled (a joining worker never samples)."""
    return sampled is not None or cfg.budget.memory_mb > 0


def metric_for(cfg: RunConfig, metric_name: str) -> Metric:
    constrained = CONSTRAINED.get(metric_name)
    return get_metric(metric_name, getattr(cfg.task, constrained) if constrained else None)


def families_for(cfg: RunConfig, task: str) -> list[str]:
    return [k for k in cfg.estimators.include if k not in cfg.estimators.exclude and task in REGISTRY.get(k).tasks]


# search.validation=auto: FLAML's rule (flaml/automl/automl.py, eval_method "auto", with flaml/config.py
# SMALL_LARGE_THRES = 1e7 cells per hour of budget and CV_HOLDOUT_THRESHOLD = 100,000 rows): k-fold CV while
# rows x columns / 0.9 stay under 1e7 x budget hours and the rows under 100,000, else one validation split.
# At 60 s that is 150,000 cells, where k-fold CV left 8-13 trials on 20k-55k rows. Never under 4,000 search
# rows (where the folds go from 5 to 3): the one split would score too few rows to choose on.
CELLS_PER_HOUR = 1e7
HOLDOUT_ROWS = 100_000
MIN_INNER_SPLIT_ROWS = 4000


def validation_for(cfg: RunConfig, n_rows: int, n_cols: int) -> tuple[int, str]:
    """(n_folds, why): k-fold CV, or 1 for one inner validation split (search.validation)."""
    s, rows = cfg.search, n_rows * (1 - cfg.search.holdout)
    k = s.cv_folds or (5 if rows <= 4000 else 3)
    if s.validation == "holdout":
        return 1, "search.validation=holdout"
    if s.validation == "cv" or s.cv_folds:
        return k, "search.validation=cv" if s.validation == "cv" else f"search.cv_folds={s.cv_folds}"
    hours = cfg.budget.time_s / 3600
    cells = rows * max(n_cols, 1) / 0.9
    if rows >= MIN_INNER_SPLIT_ROWS and hours > 0 and (cells >= CELLS_PER_HOUR * hours or rows >= HOLDOUT_ROWS):
        return 1, (f"auto: {int(rows)} rows x {n_cols} columns are too many for {k}-fold CV in "
                   f"{cfg.budget.time_s:.0f}s (FLAML's rule: 1e7 cells per hour of budget), so one inner split "
                   "scores each trial and more configurations are tried")
    return k, f"auto: {k}-fold CV on {int(rows)} search rows (5 folds up to 4000, else 3)"


def search_scoring(n_folds: int, why: str, search_rows: float) -> dict[str, Any]:
    """How trials are scored, for the profile and the model card."""
    if n_folds == 1:
        share = inner_share(int(search_rows))
        return {"scoring": "inner split", "scoring_how": f"one inner validation split ({share:.0%} of the search rows)",
                "scoring_why": why}
    return {"scoring": "cv", "scoring_how": f"{n_folds}-fold cross-validation", "scoring_why": why}


def resolve_workers(cfg: RunConfig, cells: int) -> int:
    """search.n_workers=0 (auto): one worker per usable core (automl.cores; at most 4) on small data, else one. A fixed
    trial count (budget.n_trials) keeps one worker, so the run is reproducible."""
    if cfg.search.n_workers:
        return cfg.search.n_workers
    if cfg.budget.n_trials or cells > AUTO_WORKERS_MAX_CELLS:
        return 1
    return max(1, min(usable_cores(), 4))


def search_data(cfg: RunConfig, X: pd.DataFrame, y: np.ndarray, schema: Schema, task: str, metric: Metric,
                n_classes: int, n_folds: int, n_jobs: int, structure: Structure = RANDOM,
                memory_bound: bool = False) -> SearchData:
    """The search rows with their folds, spaces and settings: the one recipe of driver and worker.
    `memory_bound`: the final refit will be held to the trial memory limit (budget.memory_mb set, or the data
    sampled to fit the budget). Its candidates are then exported inside their trials as with constraints on,
    so that the peaks the final stage prices refits by include the export (a CatBoost graph's conversion
    can cost more than its fit)."""
    folds = cv_folds(y, task, n_folds, cfg.seed, structure)
    pruner = cfg.search.pruner if len(cfg.search.objectives) == 1 else "none"  # Optuna prunes one objective only
    return SearchData(X=X, y=y, folds=folds, schema=schema, rung_rows=rung_rows(folds, pruner),
                      missing_numeric=indicator_columns(X, schema.names("numeric")), task=task, metric=metric,
                      n_classes=n_classes, seed=cfg.seed, families=families_for(cfg, task),
                      space_dir=cfg.search.space_dir, n_jobs=n_jobs,
                      imbalance=search_imbalance(cfg.search.imbalance, task, metric, y),
                      tune_threshold=cfg.task.tune_threshold, structure=structure,
                      fixed=dict(cfg.search.fixed),
                      measure_graphs=memory_bound or constrained(cfg))


def schema_for(cfg: RunConfig, df: pd.DataFrame) -> Schema:
    group = "" if cfg.data.group_is_feature else cfg.data.group_column
    return infer_schema(df, cfg.task.target, list(cfg.data.id_columns), list(cfg.data.drop_columns), group)


def structure_for(cfg: RunConfig, df: pd.DataFrame) -> Structure:
    return structure_of(df, cfg.data.group_column, cfg.data.time_column, cfg.search.time_gap)


def load_libraries(cfg: RunConfig, mem: MemoryBudget) -> None:
    """LightGBM and XGBoost if searched and the budget has room; the export stack (onnx, skl2onnx,
    onnxruntime: ~54 MB) only where trials export (trials_export). Loaded once in the driver, a library's
    pages are shared by every forked trial and each of its trials is spared the import (in session 33, 60 s
    runs whose trials loaded the export stack themselves completed fewer trials: benchmarks/RESULTS.md).
    Under a tight budget.memory_mb the boosting libraries' ~7 MB buys more rows: only the processes fitting
    them load them then. Without trial exports the driver loads the stack once the search is over
    (run.py), for the final stage's refits and exports it forks."""
    if trials_export(cfg):
        from automl.export.onnx import load_converters

        load_converters()
    if mem.total_mb - process_mb() > PRELOAD_ROOM_MB:
        for family in cfg.estimators.include:
            if family not in cfg.estimators.exclude and family in DRIVER_PRELOAD:
                importlib.import_module(family)


def trials_export(cfg: RunConfig) -> bool:
    """Whether the search exports trials as it goes (search/loop.py worth_exporting): a multi-objective study,
    constraints.* on, or a memory budget the final refit is held to (data sampled to fit the budget are
    known only later: their trials then load the stack themselves)."""
    return len(cfg.search.objectives) > 1 or cfg.budget.memory_mb > 0 or constrained(cfg)


def constrained(cfg: RunConfig) -> bool:
    """Whether the shipped graph is held to a latency or size limit (constraints.*)."""
    return cfg.constraints.max_latency_ms > 0 or cfg.constraints.max_model_mb > 0


def load_frame(cfg: RunConfig, paths: RunPaths, mem: MemoryBudget) -> tuple[pd.DataFrame, Any, Any]:
    """(frame, source, sampled): several tables joined, or one source read whole or scanned and sampled."""
    if cfg.data.tables:  # point-in-time aggregates joined onto the target table's rows
        load_libraries(cfg, mem)
        return build_flat_frame(cfg.data, cfg.task.target, paths.root), None, None
    src = open_source(cfg.data.path, query=cfg.data.query, table=cfg.data.table)
    # the libraries the driver holds all run, before it measures itself for the data allowance. After the
    # path checks, so a wrong path is still told in about a second
    load_libraries(cfg, mem)
    df, sampled = load_for_run(cfg.data.path, cfg.task.target, mem, cfg.search.n_workers or 1, cfg.search.holdout,
                               cfg.seed, cfg.data.max_rows, src=src)
    return df, src, sampled


def check_frame(cfg: RunConfig, df: pd.DataFrame, src: Any, sampled: Any) -> tuple[pd.DataFrame, int]:
    """The frame's user errors, each named by column or key; rows without a target dropped (and counted)."""
    target = cfg.task.target
    if target not in df.columns:
        cols = list(df.columns)
        raise UserError("task.target", f"'{target}' is not a column of {src.name if src else Path(cfg.data.path).name}",
                        f"Set task.target to one of: {', '.join(cols[:20])}{' ...' if len(cols) > 20 else ''}.")
    if df[target].isna().all():
        raise UserError(f"column '{target}'", "the target is missing in every row", "Choose a target with values.")
    n_missing = int(df[target].isna().sum()) if sampled is None else sampled.scan.missing_target
    if n_missing:
        log.warning("dropping %d rows whose target '%s' is missing", n_missing, target)
        df = df[df[target].notna()].reset_index(drop=True)
    for col in cfg.data.id_columns + cfg.data.drop_columns:
        if col not in df.columns:
            raise UserError("data.id_columns" if col in cfg.data.id_columns else "data.drop_columns",
                            f"'{col}' is not a column of the data", "Remove it or fix its spelling.")
    check_columns(df, cfg.data.group_column, cfg.data.time_column)
    if sampled is not None and (cfg.data.group_column or cfg.data.time_column):
        raise UserError("data.group_column" if cfg.data.group_column else "data.time_column",
                        "grouped or time-ordered validation needs every row in memory, but the data were sampled "
                        "to fit budget.memory_mb / data.max_rows", "Raise budget.memory_mb, or sample the file first.")
    if len(df) < 10:
        raise UserError("data.path",
                        f"{len(df)} data row(s) with a target are too few for cross-validation and a holdout",
                        "Provide at least a few dozen rows.")
    return df, n_missing


def prepare(cfg: RunConfig, paths: RunPaths) -> Prepared:
    """The driver's prepare stage; writes profile.json. Heavy frames it no longer needs are dropped."""
    timings: dict[str, float] = {}
    t = time.time()
    validate_config(cfg)
    target = cfg.task.target
    mem = resolve_budget(cfg.budget.memory_mb)  # data over the memory budget is scanned and sampled
    df, src, sampled = load_frame(cfg, paths, mem)
    df, n_missing = check_frame(cfg, df, src, sampled)
    task, metric_name = resolve_task(cfg, infer_task(df[target]), target, int(df[target].nunique()))
    metric = metric_for(cfg, metric_name)
    y_all, classes = prepare_target(df, target, task)
    n_folds, validation_why = validation_for(cfg, len(df), len(df.columns) - 1)
    if task != "regression":
        check_class_counts(np.asarray(classes, dtype=object)[y_all], n_folds, cfg.search.holdout, target)
    elif len(df) < 2 * n_folds + 2:
        raise UserError("data.path", f"{len(df)} rows are too few for {n_folds}-fold CV and a holdout",
                        "Provide more rows or lower search.cv_folds.")
    schema = schema_for(cfg, df)
    structure = structure_for(cfg, df)
    timings["load_s"] = time.time() - t

    t = time.time()
    profile = build_profile(df, target, task, schema, cfg.seed)
    if sampled is not None:
        profile = sampled.merge_profile(profile, target, task)
    d = cfg.data
    profile["validation"] = describe(structure, d.group_column, d.time_column, cfg.search.time_gap)
    profile["validation"].update(search_scoring(n_folds, validation_why, len(df) * (1 - cfg.search.holdout)))
    if not (d.group_column or d.time_column):
        profile["warnings"] += suspects(df, target, task, [*d.id_columns, *d.drop_columns])
    write_json(paths.profile, profile)
    timings["profile_s"] = time.time() - t
    for w in profile["warnings"]:
        log.warning("data: %s", w)

    data_sha, data_sha_of = source_sha256(src, cfg.data.path)
    if cfg.data.tables:  # a resumed study must see the same tables, not only the same target table
        data_sha = tables_sha256(cfg.data)
    X_all = to_model_frame(df, schema)
    tr, ho = (sampled.split(task) if sampled is not None
              else holdout_split(y_all, task, cfg.search.holdout, cfg.seed, structure))
    X, y = X_all.iloc[tr].reset_index(drop=True), y_all[tr]
    n_workers = resolve_workers(cfg, X.shape[0] * X.shape[1]) if sampled is None else (cfg.search.n_workers or 1)
    data = search_data(cfg, X, y, schema, task, metric, len(classes) if classes is not None else 0, n_folds,
                       max(1, usable_cores() // n_workers), structure.take(tr),
                       memory_bound=refit_memory_bound(cfg, sampled))
    # several tables: the end-to-end parity check compares against the flat frame; otherwise the model
    # frame (X_all) holds what the run needs from here (large data: it is the peak)
    prep = Prepared(data=data, X_all=X_all, X_hold=X_all.iloc[ho].reset_index(drop=True), y_hold=y_all[ho],
                    classes=classes, task=task, metric_name=metric_name, schema=schema, profile=profile, mem=mem,
                    n_workers=n_workers, data_sha=data_sha, data_sha_of=data_sha_of, shape=df.shape,
                    n_missing_target=n_missing, src=src, sampled=sampled,
                    raw=df if cfg.data.tables else None, timings=timings,
                    hold_groups=None if structure.groups is None else structure.groups[ho],
                    memory_bound=refit_memory_bound(cfg, sampled))
    del df
    # what loading, profiling and splitting freed, back to the OS before the driver measures itself for
    # the trial limit: every forked trial maps the driver's pages, kept garbage included
    release_freed()
    return prep


def prepare_worker(cfg: RunConfig, task: str, metric_name: str, n_folds: int, data_path: str,
                   n_jobs: int) -> SearchData:
    """A joining worker's search data from the driver's published choices (task, metric, folds), through
    the same target, schema, split and search-data recipe as the driver (checked by fingerprint)."""
    target = cfg.task.target
    df = read_table(data_path)
    df = df[df[target].notna()].reset_index(drop=True)
    y_all, classes = prepare_target(df, target, task)
    schema = schema_for(cfg, df)
    structure = structure_for(cfg, df)
    X_all = to_model_frame(df, schema)
    tr, _ = holdout_split(y_all, task, cfg.search.holdout, cfg.seed, structure)
    return search_data(cfg, X_all.iloc[tr].reset_index(drop=True), np.asarray(y_all[tr]), schema, task,
                       metric_for(cfg, metric_name), len(classes) if classes is not None else 0, n_folds, n_jobs,
                       structure.take(tr), memory_bound=refit_memory_bound(cfg, None))


def graph_metadata(cfg: RunConfig, prep: Prepared) -> dict[str, str]:
    """The graph's metadata_props (the ONNX contract): schema, task, classes, and each categorical column's
    levels (up to 1000) for the serving layer's checks."""
    levels = {c: sorted(set(prep.X_all[c]) - {""})[:1000] for c in prep.schema.names("categorical")}
    return metadata(prep.schema, prep.task, cfg.task.target, prep.metric_name, prep.classes, __version__,
                    {c: v for c, v in levels.items() if len(v) < 1000})
