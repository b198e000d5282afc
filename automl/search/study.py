"""The inner loop: an Optuna study driven ask/tell, each trial supervised, within the time budget.

Order: the baseline and each family's default configuration run first (cheap families first),
then the sampler (TPE by default) takes over. The study lives in a journal file in the run folder,
so the same command with the same run folder resumes it.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from automl.estimators import REGISTRY
from automl.search import objective as obj
from automl.search.supervisor import (
    COMPLETE,
    INTERRUPTED,
    PRUNED,
    request_stop,
    stop_at_safe_points,
    stop_requested,
    supervise,
)

log = logging.getLogger("automl")
SKIPPED = "SKIPPED"


@dataclass
class Budget:
    """Wall-clock accounting for the whole run (started when the process started)."""

    start: float
    time_s: float
    n_trials: int = 0
    trial_time_s: float = 0.0
    trial_memory_mb: float = 0.0
    reports_s: float = 2.0  # card, leaderboard, manifest, interpreter exit
    refit_full: bool = True  # the final stage fits twice (search rows, then all rows)
    final_scale: float = 1.0  # rows the final model is fitted on over the search rows (sampled data)
    holdout_scale: float = 1.0  # scoring the holdout vs scoring one CV fold (sampled data: a large holdout)
    used_before: float = 0.0  # seconds an earlier, crashed run of this study already spent

    @property
    def deadline(self) -> float:
        return self.start + self.time_s

    def left(self) -> float:
        return self.deadline - time.time()


@dataclass
class SearchResult:
    study: Any
    completed: int = 0
    failed: int = 0
    pruned: int = 0
    stopped_because: str = ""
    family_cost: dict[str, list[float]] = field(default_factory=dict)


def make_study(storage_path: Path, name: str, direction: str, sampler: str, seed: int,
               n_startup_trials: int, multivariate: bool, pruner: str, constant_liar: bool = False,
               storage_url: str = "", heartbeat_s: int = 10) -> Any:
    """`storage_url` "" keeps the study in the journal file at storage_path (search.storage)."""
    import optuna

    from automl.search.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(storage_url, storage_path, heartbeat_s)
    if sampler == "random":
        smp = optuna.samplers.RandomSampler(seed=seed)
    else:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            smp = optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials,
                                             multivariate=multivariate, group=multivariate,
                                             constant_liar=constant_liar)
    prn = (optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1) if pruner == "median"
           else optuna.pruners.NopPruner())
    return optuna.create_study(storage=storage, study_name=name, direction=direction, sampler=smp, pruner=prn,
                               load_if_exists=True)


def run_workers(n_workers: int, make: Any, data: obj.SearchData, budget: Budget,
                oof_dir: Path | None, on_trial: Any, tickets: bool = False) -> SearchResult:
    """N identical workers on one study (Optuna's shared-storage model): N-1 forked processes plus this
    one. Each samples with its own seed and runs its trials supervised; the journal file keeps trial
    numbers unique across processes."""
    import os

    pids = []
    for w in range(1, n_workers):
        pid = os.fork()
        if pid == 0:  # worker
            import signal

            for sig in (signal.SIGTERM, signal.SIGINT):  # stop between storage writes, never inside one
                signal.signal(sig, request_stop)
            code = 0
            try:
                from functools import partial

                from automl.reporting.progress import log_trial

                run_search(make(seed_offset=w), data, budget, on_trial=partial(log_trial, data.metric.name),
                           oof_dir=oof_dir, tickets=tickets)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        pids.append(pid)
    try:
        res = run_search(make(seed_offset=0), data, budget, on_trial=on_trial, oof_dir=oof_dir,
                         tickets=tickets, forward_stop_to=pids)
    except BaseException:
        # SIGTERM reaches the driver only (run_search passes a signal on as it lands; this covers an
        # error): each worker ends its running trial as INTERRUPTED, the study holds nothing RUNNING
        import signal

        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        raise
    finally:
        for pid in pids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
    return res


def summarize(study: Any) -> dict[str, int]:
    from optuna.trial import TrialState

    out = {"completed": 0, "failed": 0, "pruned": 0}
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            out["completed"] += 1
        elif t.state == TrialState.FAIL:
            out["failed"] += 1
        elif t.state == TrialState.PRUNED:
            out["pruned"] += 1
    return out


def recover_orphans(study: Any) -> int:
    """Trials left RUNNING by a driver that died: mark them failed and retry each once."""
    from optuna.trial import TrialState

    n = 0
    for t in study.get_trials(deepcopy=False, states=[TrialState.RUNNING]):
        study._storage.set_trial_user_attr(t._trial_id, "status", "FAIL")
        study._storage.set_trial_user_attr(t._trial_id, "error", "orphaned: the driver stopped while it ran")
        study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        if not t.user_attrs.get("retry_of") and t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        n += 1
    return n


def warm_start_queue(data: obj.SearchData) -> list[tuple[dict[str, Any], str]]:
    """(params, origin) in the order they run: each family's default configuration (cheap families
    first, no sampler and no class weights: the same trials as with search.imbalance=false), then the
    portfolio entries and the imbalance variants of the defaults (class weights, balanced bagging;
    cheap families first). The variants come before the portfolio only on an imbalanced target (the
    profile's flag) scored by a label metric (f1, balanced accuracy, ...), where the decision depends on
    the class prior; a ranking metric (average precision, ROC AUC) or log loss is not: reweighting the
    classes leaves the best ranking as it is and only adds variance (benchmarks/imbalance_probe.py, a
    rare-positive subsample of german_health: class weights lowered test AP in 11 of 12 family x draw
    pairs, balanced bagging in 10 of 11), so there the portfolio comes first."""
    families = sorted(data.families, key=lambda k: REGISTRY.get(k).cost)
    queue = [(obj.default_params(data, fam), "default") for fam in families]
    ported = [(obj.default_params(data, fam, entry), "portfolio") for fam in families for entry in obj.portfolio(data, fam)]
    variants = [(params, "imbalance") for fam in families for params in obj.imbalance_variants(data, fam)]
    first = obj.imbalanced(data) and data.metric.counts is not None
    return queue + (variants + ported if first else ported + variants)


def warm_start(study: Any, data: obj.SearchData, limit: int = 0) -> None:
    """Queue warm_start_queue (at most `limit` entries when limit > 0: with a trial count, each queued
    trial is one of the count)."""
    if study.trials:
        return
    queue = warm_start_queue(data)
    for params, origin in queue[:limit] if limit else queue:
        study.enqueue_trial(params, user_attrs={"origin": origin})


def final_cost(attrs: dict[str, Any], n_folds: int, refit_full: bool = True, scale: float = 1.0,
               holdout_scale: float = 1.0) -> float:
    """Expected seconds to refit a trial's pipeline on all search rows (and, with refit_full, on all
    rows), export it and check parity, from what its CV folds cost. `scale`: the final sample's rows over
    the search rows (a sampled run refits on a larger sample than it searched; automl/search/sample_size.py)."""
    # the search-rows refit sees 1/(k-1) more rows than a fold did (and `scale` times more on a larger sample)
    grow = scale * n_folds / max(n_folds - 1, 1)
    rows = grow * (1.25 if refit_full else 1.0)  # rows of the shipped model relative to a fold's
    fit = 1.2 * attrs.get("fold_fit_s", 1.0) * (grow + (rows if refit_full else 0.0))
    # export and parity time grow with model size, which for trees grows with the rows
    export = 1.5 * attrs.get("export_s", 0.5) * (rows + (grow if refit_full else 0.0))  # + the scored model
    # scoring the holdout: what scoring one validation fold cost (a trial's time beyond its fits), times
    # `holdout_scale` (holdout rows over a fold's, twice: Python and onnxruntime) and `scale` for families
    # whose prediction cost grows with the training rows (k-NN: 1.6 s fits in a 220 s trial)
    k = max(n_folds, 1)
    predict = (1.2 * max(attrs.get("seconds", 0.0) - k * attrs.get("fold_fit_s", 0.0), 0.0) / k * max(scale, 1.0)
               * holdout_scale)
    return fit + export + predict + 0.5


def last_resort(done: list[Any], cost: Callable[[Any], float]) -> list[Any]:
    """The trials shipped when the clock has run out, whatever their cost, in order: the best-ranked
    (`done` is sorted best first) among the cheap ones, those expected to cost at most twice the
    cheapest or one second more, then the cheapest itself if that is another trial (estimates made
    under load can be off by more than the time limit allows). The cheapest alone is usually the
    baseline, which for a ranking metric is no model at all (average precision = the prevalence),
    while a linear model costs a second more."""
    costs = [cost(t) for t in done]
    floor = min(costs)
    best = next(t for t, c in zip(done, costs, strict=True) if c <= max(2.0 * floor, floor + 1.0))
    cheapest = done[costs.index(floor)]
    return [best] if best is cheapest else [best, cheapest]


def _unseen_cost(family: str) -> float:
    """Seconds a family not yet run is assumed to need: a few, scaled by its relative cost tag."""
    return max(0.5, 3.0 * min(REGISTRY.get(family).cost, 1.0))


def _margin(budget: Budget) -> float:
    return 1.0 + budget.reports_s + 0.02 * budget.time_s


def _reserve(done: list[tuple[float, float]], budget: Budget) -> float:
    """Time to keep for shipping the best trial that can still be shipped in time (refit, export,
    parity) plus the reports. A better trial too costly to ship does not stop the search."""
    if not done:  # nothing to ship yet: a first trial is worth the reports' share (they shrink to fit)
        return 1.0 + 0.02 * budget.time_s
    room = budget.left() - _margin(budget)
    shippable = [(v, c) for v, c in done if c <= room]
    cost = max(shippable)[1] if shippable else 0.0
    # room to refit one or two more pipelines if greedy ensemble selection wants them
    ensemble = min(1.5 * cost, 0.1 * budget.time_s)
    # and the time the final stage keeps free for its last resort while it tries them (run.py fallback_s),
    # estimated from the cheapest trial: the last resort is usually that trial or one close to it in cost
    floor = min(c for _, c in done)
    keep = 1.5 * min(2.0 * floor, floor + 1.0) + 0.5
    return cost + ensemble + keep + _margin(budget)


def run_search(study: Any, data: obj.SearchData, budget: Budget,
               on_trial: Callable[[dict[str, Any]], None] | None = None,
               oof_dir: Path | None = None, tickets: bool = False,
               forward_stop_to: Sequence[int] = ()) -> SearchResult:
    """One worker's loop. tickets=True: run only trials claimed from the queue the driver filled with
    budget.n_trials tickets (exact count across workers, automl/search/coordination.py).
    SIGINT/SIGTERM end it at the next safe point, then raise KeyboardInterrupt; forward_stop_to are
    the pids of forked workers that a stop is passed on to."""
    from optuna.trial import TrialState

    from automl.search import coordination as co

    res = SearchResult(study=study)
    maximize = data.metric.greater_is_better
    sign = 1 if maximize else -1
    k = len(data.folds)
    best_val = -math.inf
    done: list[tuple[float, float]] = []  # (sign * CV score, final-stage cost) of completed trials
    for t in study.get_trials(deepcopy=False, states=[TrialState.COMPLETE]):
        res.family_cost.setdefault(t.params.get("family", "?"), []).append(t.user_attrs.get("seconds", 0.0))
        done.append((sign * t.value, final_cost(t.user_attrs, k, budget.refit_full, budget.final_scale,
                                                      budget.holdout_scale)))
        best_val = max(best_val, sign * t.value)
    rng = np.random.default_rng(data.seed)
    prunable = obj.fold_scores_comparable(data)
    skips = 0
    finished = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)

    def n_ran() -> int:  # trials that ran (a trial skipped for lack of time did not)
        return sum(t.user_attrs.get("status") != SKIPPED for t in study.get_trials(deepcopy=False, states=finished))

    n_before = n_ran()
    beat = co.Heartbeat(study, None)
    with stop_at_safe_points(forward_stop_to):  # a signal stops the loop between storage writes
        try:
            while True:
                # the trial cap counts every worker's trials of this invocation (shared study)
                n_done = n_ran() - n_before
                if not tickets and budget.n_trials and n_done >= budget.n_trials:
                    res.stopped_because = f"trial budget reached ({budget.n_trials})"
                    break
                if stop_requested():
                    res.stopped_because = "interrupted"
                    break
                left = budget.left() - _reserve(done, budget)
                if left < 1.0:
                    res.stopped_because = "time budget (remaining time reserved for refit and export)"
                    break
                if not co.searching(study):
                    res.stopped_because = "the driver ended the search"
                    break
                # what optimize() does before each ask: fail stale trials, retry once
                dead = co.fail_dead(study)
                if dead:
                    log.warning("trial(s) %s of a dead worker failed and queued for one retry", dead)
                if tickets:
                    trial = co.claim(study)
                    if trial is None:
                        if co.running(study):  # another worker's trial may still die and come back as a retry
                            time.sleep(0.5)
                            continue
                        res.stopped_because = f"trial budget reached ({budget.n_trials})"
                        break
                else:
                    trial = co.ask(study)
                try:
                    co.mark_claimed(trial)
                    beat.stop()
                    # beats from the claim on: a death while sampling is caught too
                    beat = co.Heartbeat(study, trial).start()
                    cand = obj.sample(trial, data)
                    costs = res.family_cost.get(cand.family)
                    expected = float(np.median(costs)) if costs else _unseen_cost(cand.family)
                    if expected > left:
                        trial.set_user_attr("status", SKIPPED)
                        trial.set_user_attr("error", f"skipped: expected {expected:.1f}s, {left:.1f}s left")
                        # a skipped trial did not run: the steering trial below replaces its ticket
                        if tickets:
                            trial.set_user_attr("refunded", True)
                        study.tell(trial, state=TrialState.PRUNED)
                        skips += 1
                        # steer the sampler to a family that fits: fix it in the next trial, sample the rest
                        fits = [f for f in data.families if (f != "baseline" or not res.completed)
                                and float(np.median(res.family_cost.get(f, [_unseen_cost(f)]))) <= left]
                        if not fits or skips >= 30:
                            res.stopped_because = "time budget (no family fits in the remaining time)"
                            break
                        pick = fits[int(rng.integers(len(fits)))]
                        study.enqueue_trial({"family": pick}, skip_if_exists=False)
                        continue
                    skips = 0
                    limit = min(left, budget.trial_time_s or max(10.0, 0.5 * budget.time_s))

                    def on_message(msg: Any, trial: Any = trial) -> str:
                        _, step, score = msg
                        trial.report(float(score), step=int(step))
                        return "prune" if prunable and trial.should_prune() else "go"

                    outcome = supervise(obj.cross_validate, (data, cand), timeout_s=limit,
                                        memory_mb=budget.trial_memory_mb, on_message=on_message)
                    res.family_cost.setdefault(cand.family, []).append(outcome.seconds)
                    trial.set_user_attr("status", outcome.status)
                    trial.set_user_attr("seconds", round(outcome.seconds, 3))
                    trial.set_user_attr("preprocessing", cand.summary())
                    if outcome.error:
                        trial.set_user_attr("error", outcome.error)
                    if outcome.status == COMPLETE:
                        v = outcome.value
                        trial.set_user_attr("fold_scores", [round(s, 6) for s in v["fold_scores"]])
                        trial.set_user_attr("cv_std", v["std"])
                        trial.set_user_attr("fit_s", round(v["fit_s"], 3))
                        trial.set_user_attr("fold_fit_s", round(v["fold_fit_s"], 3))
                        trial.set_user_attr("predict_ms_per_row", round(v["predict_ms_per_row"], 5))
                        trial.set_user_attr("export_s", round(v["export_s"], 3))
                        trial.set_user_attr("onnx_bytes", int(v["onnx_bytes"]))
                        if v.get("threshold") is not None:
                            trial.set_user_attr("threshold", round(v["threshold"], 6))
                        if oof_dir is not None:
                            oof_dir.mkdir(exist_ok=True)
                            np.save(oof_dir / f"trial_{trial.number}.npy", v["oof"])
                        study.tell(trial, v["mean"])
                        res.completed += 1
                        cost = final_cost(dict(trial.user_attrs), k, budget.refit_full, budget.final_scale,
                                          budget.holdout_scale)
                        done.append((sign * v["mean"], cost))
                        best_val = max(best_val, sign * v["mean"])
                    elif outcome.status == PRUNED:
                        study.tell(trial, state=TrialState.PRUNED)
                        res.pruned += 1
                    elif outcome.status == INTERRUPTED:
                        study.tell(trial, state=TrialState.FAIL)
                        res.stopped_because = "interrupted"
                        break
                    else:
                        study.tell(trial, state=TrialState.FAIL)
                        res.failed += 1
                    # budget accounting survives a crash of the driver
                    study.set_user_attr("budget_used_s", budget.used_before + time.time() - budget.start)
                    if on_trial:
                        on_trial({"number": trial.number, "family": cand.family, "status": outcome.status,
                                  "value": outcome.value["mean"] if outcome.status == COMPLETE else None,
                                  "best": sign * best_val if best_val > -math.inf else None,
                                  "seconds": outcome.seconds,
                                  "left": budget.left(), "completed": res.completed, "failed": res.failed,
                                  "pruned": res.pruned, "error": outcome.error})
                except BaseException:
                    # Ctrl-C / SIGTERM at any point of the trial (sampling included): it ends as interrupted,
                    # so the storage holds nothing RUNNING
                    if study._storage.get_trial(trial._trial_id).state == TrialState.RUNNING:
                        trial.set_user_attr("status", "INTERRUPTED")
                        trial.set_user_attr("error", "interrupted: the run was stopped while this trial ran")
                        study.tell(trial, state=TrialState.FAIL)
                    raise
        finally:
            beat.stop()
    return res

