"""The search stage: the study (new or resumed), its budget, warm start and trial tickets, the workers,
and on sampled data the sample sizes. Ends with the study's completed trials ranked for the final stage."""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from automl.config.schema import RunConfig
from automl.data.scan import CLASS_FLOOR
from automl.data.split import cv_folds
from automl.errors import UserError
from automl.evaluation.leaderboard import build_leaderboard
from automl.io import RunPaths, write_text
from automl.memory import trial_memory_mb
from automl.search import coordination as coord
from automl.search.budget import Budget
from automl.search.enumerate_ahead import could_sample, synthesis_ready
from automl.search.learning_curve import learning_curve
from automl.search.loop import SearchResult
from automl.search.objective import SearchData
from automl.search.parallel import run_workers
from automl.search.rung import rung_rows
from automl.search.sample_size import TRIAL_LIMIT_FACTOR, plan, subset
from automl.search.study import recover_orphans, search_study, summarize, warm_start
from automl.stages.prepare import STACK_LOAD_S, Prepared, trials_export
from automl.stages.rescore import rescore_top

log = logging.getLogger("automl")
MIN_FINAL_S = 10.0  # a resumed run whose earlier attempt used its budget still gets this for the final stage


def report_allowance_s(time_s: float) -> float:
    """Time kept back for report.html (plots, hyperparameter importance) and its measurements. It drops
    its optional parts to fit what is left; measured at 0.9-1.1 s on 5,000-row data at 60 s budgets, and
    1.06 s on german_health (16k search rows) at 60 s."""
    return min(3.0, 0.025 * time_s)


@dataclass
class Searched:
    """The study after the search, and the rows the final stage fits on."""
    study: Any
    budget: Budget
    result: SearchResult
    data: SearchData  # the rows the trials were scored on
    final_data: SearchData  # the rows the final model is fitted on: on sampled data, more than the search's
    resumed: bool
    orphans: int
    used_before_s: float
    timings: dict[str, float] = field(default_factory=dict)

    def completed(self, greater_is_better: bool) -> list[Any]:
        """Completed trials, best first."""
        from optuna.trial import TrialState

        done = list(self.study.get_trials(deepcopy=False, states=[TrialState.COMPLETE]))
        done.sort(key=lambda t: t.values[0], reverse=greater_is_better)
        return done

    def front_first(self, done: list[Any]) -> list[Any]:
        """`done` (ranked by the metric) with a multi-objective study's Pareto front first, each part in its
        order: the final stage then ships the best-score member of the front, falling to the rest of the front
        and then to the other trials when a constraint or the parity gate refuses it. A single-objective study:
        `done` as it is."""
        if len(self.study.directions) == 1:
            return done
        front = {t.number for t in self.study.best_trials}
        return [t for t in done if t.number in front] + [t for t in done if t.number not in front]


def search(cfg: RunConfig, prep: Prepared, paths: RunPaths, start: float,
           progress: Callable[[str, Budget], Any], log_trial: Callable[[str, dict[str, Any]], Any]) -> Searched:
    """Run the search stage. `progress(metric_name, budget)` is a context manager whose `.update` is
    called once per trial of this process (the console's status line and its log line);
    `log_trial(metric_name, record)` logs a forked worker's trial."""
    timings: dict[str, float] = {}
    data, metric = prep.data, prep.data.metric
    if prep.n_workers > 1:  # before the limits are set: the driver measures itself with what its workers share
        synthesis_ready(could_sample(data.spaces["preprocessing"], data.schema), data.spaces["preprocessing"],
                        data.schema)

    budget = Budget(start=start, time_s=cfg.budget.time_s, n_trials=cfg.budget.n_trials,
                    trial_time_s=cfg.budget.trial_time_s,
                    trial_memory_mb=trial_memory_mb(cfg.budget.trial_memory_mb, prep.mem, prep.n_workers),
                    refit_full=cfg.export.refit_full, reports_s=1.5 + report_allowance_s(cfg.budget.time_s),
                    concurrent=prep.n_workers > 1, pending_s=0.0 if trials_export(cfg) else STACK_LOAD_S)
    budget.export_levels = int(sum(data.X[c].nunique() for c in data.schema.names("categorical") if c in data.X))

    def make(seed_offset: int = 0) -> Any:
        return search_study(cfg, paths.study, metric.direction, cfg.seed + seed_offset, prep.n_workers > 1,
                            cfg.search.storage, prep.metric_name)

    study = make()
    coord.check_owner(study, cfg.search.storage, str(paths.root))
    prev_sha = study.user_attrs.get("data_sha256")
    if prev_sha and prev_sha != prep.data_sha:
        raise UserError("hydra.run.dir", "this run folder's study was made from different data",
                        "Use a new run folder (hydra.run.dir) or the original data file.")
    final_data = data
    if prep.sampled is not None:  # would more rows pay? measured before the search, on the holdout
        t = time.time()
        prep.sampled.info["learning_curve"] = learning_curve(
            data, prep.X_hold, prep.y_hold, min(max(0.12 * cfg.budget.time_s, 6.0), 60.0), budget.trial_memory_mb)
        timings["learning_curve_s"] = time.time() - t
        # a resumed study keeps the sizes its trials (and their out-of-fold predictions) were made with
        data, final_data = size_samples(data, prep.sampled, budget, len(prep.y_hold), cfg,
                                        study.user_attrs.get("sample_sizes"))
        study.set_user_attr("sample_sizes", prep.sampled.info["planned_rows"])
    resumed = bool(study.trials)
    budget.rescore_top = rescore_top(cfg.search.rescore, data)
    if not prev_sha:
        study.set_user_attr("data_sha256", prep.data_sha)
    orphans = recover_orphans(study)
    # a run that died (kill -9, power loss) left run_state=running: its time counts against this budget
    used_before = (float(study.user_attrs.get("budget_used_s", 0.0))
                   if study.user_attrs.get("run_state") == "running" else 0.0)
    if used_before:
        budget.time_s = max(cfg.budget.time_s - used_before, MIN_FINAL_S)
        log.info("the earlier run stopped after %.1fs of its %.0fs budget; %.1fs remain", used_before,
                 cfg.budget.time_s, budget.time_s)
    study.set_user_attr("run_state", "running")
    study.set_user_attr("budget_used_s", used_before)
    budget.used_before = used_before
    if resumed:
        log.info("resuming study with %d earlier trials (%d orphaned trial(s) marked failed)",
                 len(study.trials), orphans)
    warm_start(study, data, limit=cfg.budget.n_trials)
    # an exact trial count across all workers (coordination.py); a resumed study may hold more queued
    # trials than budget.n_trials, so a resume caps by counting finished trials instead
    tickets = cfg.budget.n_trials > 0 and not resumed
    n_tickets = coord.enqueue_tickets(study, cfg.budget.n_trials) if tickets else 0
    coord.publish(study, cfg, data, prep.data_sha, budget, n_tickets, str(paths.root))
    log.info("other workers join with: %s",
             coord.join_command(cfg.search.storage, cfg.search.study_name, str(paths.study)))

    t = time.time()
    try:
        with progress(prep.metric_name, budget) as bar:
            result = run_workers(prep.n_workers, make, data, budget, paths.oof, bar.update, tickets,
                                 on_worker_trial=partial(log_trial, prep.metric_name))
            coord.finish_search(study, budget)
    except KeyboardInterrupt:
        write_text(paths.leaderboard, build_leaderboard(study, metric.greater_is_better, {}).to_csv(index=False))
        log.error("interrupted: partial leaderboard written to %s; rerun the same command to resume",
                  paths.leaderboard)
        raise
    timings["search_s"] = time.time() - t
    counts = summarize(study)
    result.completed, result.failed, result.pruned = counts["completed"], counts["failed"], counts["pruned"]
    log.info("search done: %d complete, %d failed, %d pruned/skipped (%s)", result.completed, result.failed,
             result.pruned, result.stopped_because)
    return Searched(study=study, budget=budget, result=result, data=data, final_data=final_data, resumed=resumed,
                    orphans=orphans, used_before_s=used_before, timings=timings)


def size_samples(data: SearchData, sampled: Any, budget: Budget, n_hold: int, cfg: RunConfig,
                 resumed: list[int] | None = None) -> tuple[SearchData, SearchData]:
    """(search data, final data) on sampled data: the search on a time-bound prefix of the memory-bound
    sample, the final refit on as much of it as its time allows (automl/search/sample_size.py).
    `resumed`: the [search, final] row counts an earlier run of this study chose, kept as they were."""
    lc = sampled.info.get("learning_curve") or {}
    sizes = plan(lc.get("points", []), len(data.y), n_hold, len(data.folds), budget.left() - budget.reports_s,
                 cfg.export.refit_full)
    if resumed:
        sizes.search_rows, sizes.final_rows = min(resumed), max(resumed)
        sizes.search_reason = sizes.final_reason = "kept from the earlier run of this study (resumed)"
    sampled.info.update(sizes.to_json())
    sampled.info["planned_rows"] = [sizes.search_rows, sizes.final_rows]  # before the class floors are added
    final = fewer_rows(data, sizes.final_rows, cfg.seed)
    search_rows = fewer_rows(final, sizes.search_rows, cfg.seed)
    sampled.info["search_sample_rows"] = len(search_rows.y)  # with the class floors
    sampled.info["final_sample_rows"] = len(final.y)
    sampled.info["final_model_rows"] = len(final.y) + (n_hold if cfg.export.refit_full else 0)  # as planned
    budget.final_scale = len(final.y) / len(search_rows.y)
    if not cfg.budget.trial_time_s and sizes.per_trial_s:  # a family far slower than planned cannot eat the search
        budget.trial_time_s = max(10.0, TRIAL_LIMIT_FACTOR * sizes.per_trial_s)
        sampled.info["trial_time_limit_s"] = round(budget.trial_time_s, 1)
    # the holdout is drawn from the whole file, and may be larger than a CV fold: scored twice (Python, ONNX)
    budget.holdout_scale = max(1.0, 2.0 * n_hold / max(len(search_rows.y) / len(search_rows.folds), 1.0))
    budget.holdout_rows = n_hold
    log.info("sample sizes: search %d rows (%s); final model %d rows (%s); memory allowed %d",
             len(search_rows.y), sizes.search_reason, len(final.y), sizes.final_reason, sizes.memory_rows)
    return search_rows, final


def fewer_rows(d: SearchData, n: int, seed: int) -> SearchData:
    """`d` on n of its rows (every class kept at CLASS_FLOOR rows at least), with folds of their own; `d` itself
    when it has no more than n."""
    if n >= len(d.y):
        return d
    keep = subset(d.y, n, d.task != "regression", CLASS_FLOOR)
    y = d.y[keep]
    folds = cv_folds(y, d.task, len(d.folds), seed)
    # the rung's size is the new folds' (the old one can exceed their training rows: a slow scan that left a
    # few seconds for the search cut a 41k-row sample to 2,000 rows, and every trial failed drawing its rung)
    return dataclasses.replace(d, X=d.X.iloc[keep].reset_index(drop=True), y=y, folds=folds,
                               rung_rows=rung_rows(folds, "median") if d.rung_rows else 0)
