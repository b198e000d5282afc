"""One worker's trial loop, cut the way Optuna's `study/_optimize.py` is: `run_search` holds the stop
conditions only; `run_trial` is claim -> sample -> run -> record -> report for one trial.

Each trial runs supervised (automl/search/supervisor.py) within the time the budget leaves once the
final stage's share is kept (automl/search/budget.py). Several workers may share the study
(automl/search/coordination.py): what a trial line reports as best is read from the shared storage.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from automl.estimators import REGISTRY
from automl.io import oof_file
from automl.search import coordination as co
from automl.search import objective as obj
from automl.search import optuna_compat as oc
from automl.search.budget import Budget, completed_costs, first_attempt_s, rescore_s, reserve, unseen_cost
from automl.search.deploy_cost import cost_values
from automl.search.ensemble_room import room_pays
from automl.search.rung import rung_prunes
from automl.search.study import study_objectives
from automl.search.supervisor import (
    COMPLETE,
    INTERRUPTED,
    PRUNED,
    Outcome,
    stop_at_safe_points,
    stop_requested,
    supervise,
)

log = logging.getLogger("automl")
SKIPPED = "SKIPPED"
MAX_SKIPS = 30  # trials skipped in a row for lack of time before the search gives up

TrialCallback = Callable[[dict[str, Any]], None]


@dataclass
class SearchResult:
    study: Any
    completed: int = 0
    failed: int = 0
    pruned: int = 0
    stopped_because: str = ""
    family_cost: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class LoopState:
    """What one worker's loop carries from one trial to the next."""
    result: SearchResult
    sign: int  # +1 when a higher score is better
    n_folds: int
    done: list[tuple[float, float, float, float]]  # (sign * CV score, final-stage cost, room, constant)
    n_before: int  # trials that had run before this loop started (a resumed study)
    prunable: bool
    rng: np.random.Generator
    beat: co.Heartbeat
    skips: int = 0
    scored: list[tuple[float, str]] = field(default_factory=list)  # (sign * CV score, family), completed trials
    exported: dict[str, list[float]] = field(default_factory=dict)  # family -> export_s / fold_fit_s of exported
    seconds: list[tuple[float, float]] = field(default_factory=list)  # (sign * CV score, trial seconds), completed
    objectives: tuple[str, ...] = ("metric",)  # the study's (search.objectives): more than one = multi-objective

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1


def trials_ran(study: Any) -> int:
    """Finished trials that ran (a trial skipped for lack of time did not), every worker's."""
    from optuna.trial import TrialState

    finished = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
    trials = study.get_trials(deepcopy=False, states=finished)
    return sum(t.user_attrs.get("status") != SKIPPED for t in trials)


def study_best(study: Any) -> float | None:
    """The study's best CV score as the shared storage holds it (every worker's trials); None before one
    completed. A multi-objective study has no single best: the best of its first objective, the metric."""
    from optuna.trial import TrialState

    if len(study.directions) == 1:
        try:
            return float(study.best_value)
        except ValueError:
            return None
    scores = [t.values[0] for t in study.get_trials(deepcopy=False, states=[TrialState.COMPLETE])]
    if not scores:
        return None
    return float(max(scores) if study.directions[0].name == "MAXIMIZE" else min(scores))


def start_state(study: Any, data: obj.SearchData, budget: Budget) -> LoopState:
    from optuna.trial import TrialState

    res = SearchResult(study=study)
    sign = 1 if data.metric.greater_is_better else -1
    k = len(data.folds)
    scored: list[tuple[float, str]] = []
    exported: dict[str, list[float]] = {}
    done, seconds = completed_costs(study, sign, k, budget)
    for t in study.get_trials(deepcopy=False, states=[TrialState.COMPLETE]):
        fam, attrs = t.params.get("family", "?"), t.user_attrs
        res.family_cost.setdefault(fam, []).append(attrs.get("seconds", 0.0))
        scored.append((sign * t.values[0], fam))
        if "export_s" in attrs and not attrs.get("export_estimated"):
            exported.setdefault(fam, []).append(attrs["export_s"] / max(attrs.get("fold_fit_s", 0.0), 0.01))
    objectives = study_objectives(study)
    # Optuna's pruners (and Trial.report) take one objective: a multi-objective study runs every trial to the end
    return LoopState(result=res, sign=sign, n_folds=k, done=done, n_before=trials_ran(study),
                     prunable=obj.fold_scores_comparable(data) and len(objectives) == 1,
                     rng=np.random.default_rng(data.seed), beat=co.Heartbeat(study, None), scored=scored,
                     exported=exported, seconds=seconds, objectives=objectives)


def stop_reason(study: Any, budget: Budget, state: LoopState, tickets: bool, left: float) -> str:
    """Why the loop stops before its next trial ("" to go on). `left`: seconds left for trials."""
    # the trial cap counts every worker's trials of this invocation (shared study)
    if not tickets and budget.n_trials and trials_ran(study) - state.n_before >= budget.n_trials:
        return f"trial budget reached ({budget.n_trials})"
    if stop_requested():
        return "interrupted"
    if left < 1.0:
        return "time budget (remaining time reserved for refit and export)"
    if not co.searching(study):
        return "the driver ended the search"
    return ""


def run_search(study: Any, data: obj.SearchData, budget: Budget, on_trial: TrialCallback | None = None,
               oof_dir: Path | None = None, tickets: bool = False,
               forward_stop_to: Sequence[int] = ()) -> SearchResult:
    """One worker's loop. tickets=True: run only trials claimed from the queue the driver filled with
    budget.n_trials tickets (exact count across workers, automl/search/coordination.py).
    SIGINT/SIGTERM end it at the next safe point, then raise KeyboardInterrupt; forward_stop_to are
    the pids of forked workers that a stop is passed on to. on_trial gets one dict per trial that ran
    (trial_report)."""
    state = start_state(study, data, budget)
    with stop_at_safe_points(forward_stop_to):  # a signal stops the loop between storage writes
        try:
            while True:
                state.done, state.seconds = completed_costs(study, state.sign, state.n_folds, budget)
                left = time_left(budget, state)
                if left < 1.0 and budget.ensemble_room is None and oof_dir is not None:
                    extra = room_pays(study, state.sign, data, oof_dir, budget, state.done)
                    budget.ensemble_room, budget.ensemble_extra_s = extra is not None, extra
                    left = time_left(budget, state)
                why = stop_reason(study, budget, state, tickets, left) or run_trial(
                    study, data, budget, state, left, tickets, oof_dir, on_trial)
                if why:
                    state.result.stopped_because = why
                    log.info("search stopped %.1fs before the deadline: %.1fs kept for the final stage's first "
                             "attempt, %.1fs for re-scoring", budget.left(), first_attempt_s(state.done, budget),
                             rescore_s(state.seconds, budget))
                    break
        finally:
            state.beat.stop()
    return state.result


def time_left(budget: Budget, state: LoopState) -> float:
    """Seconds left for trials once the final stage's share and the re-scoring are kept."""
    return budget.left() - reserve(state.done, budget, rescore_s(state.seconds, budget))


def next_trial(study: Any, tickets: bool) -> Any | None:
    """What optimize() does before each ask (fail stale trials, retry them once), then the trial:
    a claimed ticket, or with no tickets a queued or sampled one. None: no ticket left."""
    dead = co.fail_dead(study)
    if dead:
        log.warning("trial(s) %s of a dead worker failed and queued for one retry", dead)
    return co.claim(study) if tickets else co.ask(study)


def run_trial(study: Any, data: obj.SearchData, budget: Budget, state: LoopState, left: float, tickets: bool,
              oof_dir: Path | None, on_trial: TrialCallback | None) -> str:
    """Claim, sample, run supervised, record and report one trial. Returns why the loop stops
    ("" to go on)."""
    trial = next_trial(study, tickets)
    if trial is None:
        if co.running(study):  # another worker's trial may still die and come back as a retry
            time.sleep(0.5)
            return ""
        return f"trial budget reached ({budget.n_trials})"
    try:
        co.mark_claimed(trial)
        state.beat.stop()
        # beats from the claim on: a death while sampling is caught too
        state.beat = co.Heartbeat(study, trial).start()
        cand = obj.sample(trial, data)
        expected = expected_seconds(state.result.family_cost, cand.family)
        if expected > left:
            return skip_trial(study, trial, data, state, expected, left, tickets)
        state.skips = 0
        limit = min(left, budget.trial_time_s or max(10.0, 0.5 * budget.time_s))

        def on_message(msg: Any) -> str:
            kind, step, score = msg
            if kind == "export?":
                return "export" if worth_exporting(state, cand.family, state.sign * float(score),
                                                   data.measure_graphs) else "skip"
            if state.multi:  # nothing to report to: no pruning in a multi-objective study
                return "go"
            trial.report(float(score), step=int(step))
            if kind == "rung":
                return "prune" if rung_prunes(study, trial.number, state.sign, float(score)) else "go"
            return "prune" if state.prunable and trial.should_prune() else "go"

        outcome = supervise(obj.cross_validate, (data, cand), timeout_s=limit,
                            memory_mb=budget.trial_memory_mb, on_message=on_message)
        state.result.family_cost.setdefault(cand.family, []).append(outcome.seconds)
        if record_trial(study, trial, cand, outcome, budget, state, oof_dir) == INTERRUPTED:
            return "interrupted"
        if on_trial:
            on_trial(trial_report(study, trial, cand, outcome, budget, state.result))
        return ""
    except BaseException:
        end_interrupted(study, trial)
        raise


EXPORT_TOP = 8  # with constraints on: a trial within the best 8 so far, or its family's best 2, is exported
EXPORT_TOP_FAMILY = 2


def worth_exporting(state: LoopState, family: str, signed: float, measure_graphs: bool = False) -> bool:
    """Whether a trial that just finished its folds is exported and parity-checked now. By default none is:
    the final stage exports and gates what it ships (falling back down its ladder if a graph fails), and
    prices the exports of its candidates by their family's ratio of export to fit time
    (estimated_export_s). An export in a trial set the run's peak on small data: the trial then holds the
    export stack (onnx, skl2onnx, onnxruntime: ~54 MB) beside its model and graph, and a driver that held
    the stack for them passed it to every trial it forked (benchmarks/RESULTS.md, sessions 32 and 36).
    Exported all the same: every trial of a multi-objective study (its graph's latency and size are
    objectives, and a family's median is a poor stand-in for one trial's: a forest's size grows with its
    trees and depth), and with `measure_graphs` (constraints.* on, or a memory limit the final refit is
    held to) the first of each family and a trial likely to ship or to join the ensemble's pool (the best 8
    and 2 of its family), so the sampler's constraint values and the peak its refit is priced by are its
    own. `signed`: its CV score, higher is better."""
    if state.multi:
        return True
    if not measure_graphs:
        return False
    if family not in state.exported:
        return True
    same = sorted((v for v, fam in state.scored if fam == family), reverse=True)
    overall = sorted((v for v, _ in state.scored), reverse=True)
    return (len(overall) < EXPORT_TOP or signed > overall[EXPORT_TOP - 1]
            or len(same) < EXPORT_TOP_FAMILY or signed > same[EXPORT_TOP_FAMILY - 1])


def estimated_export_s(state: LoopState, family: str, fold_fit_s: float) -> float:
    """Export seconds of a trial that was not exported: its fold fit time times the median ratio of export
    to fold fit time of its family's trials exported in this run, or else the family's own ratio measured
    over public datasets (EstimatorSpec.export_ratio). Tree ensembles export in time proportional to their
    size, which the fit time tracks."""
    ratios = state.exported.get(family) or [export_ratio(family)]
    return float(np.median(ratios)) * max(fold_fit_s, 0.01)


def export_ratio(family: str) -> float:
    """The family's export seconds per fold-fit second (EstimatorSpec.export_ratio; 0.5 for a family the
    registry does not know, as for a plugin removed since the study began)."""
    return REGISTRY.get(family).export_ratio if family in REGISTRY else 0.5


def expected_seconds(family_cost: dict[str, list[float]], family: str) -> float:
    """A trial's expected seconds: the median of its family's trials so far, or a guess for a new family."""
    costs = family_cost.get(family)
    return float(np.median(costs)) if costs else unseen_cost(family)


def skip_trial(study: Any, trial: Any, data: obj.SearchData, state: LoopState, expected: float, left: float,
               tickets: bool) -> str:
    """End a trial expected to take longer than the time left as skipped, and steer the sampler to a
    family that fits: fix it in the next trial, sample the rest. Returns why the loop stops ("" to go on)."""
    from optuna.trial import TrialState

    trial.set_user_attr("status", SKIPPED)
    trial.set_user_attr("error", f"skipped: expected {expected:.1f}s, {left:.1f}s left")
    if tickets:  # a skipped trial did not run: the steering trial below replaces its ticket
        trial.set_user_attr("refunded", True)
    study.tell(trial, state=TrialState.PRUNED)
    state.skips += 1
    res = state.result
    fits = [f for f in data.families if (f != "baseline" or not res.completed)
            and float(np.median(res.family_cost.get(f, [unseen_cost(f)]))) <= left]
    if not fits or state.skips >= MAX_SKIPS:
        return "time budget (no family fits in the remaining time)"
    pick = fits[int(state.rng.integers(len(fits)))]
    study.enqueue_trial({"family": pick}, skip_if_exists=False)
    return ""


def record_trial(study: Any, trial: Any, cand: obj.Candidate, outcome: Outcome, budget: Budget,
                 state: LoopState, oof_dir: Path | None) -> str:
    """Tell the study how the trial ended, with what the final stage and the reports read from its
    user attrs, and save its out-of-fold predictions. Returns the outcome's status."""
    from optuna.trial import TrialState

    res = state.result
    trial.set_user_attr("status", outcome.status)
    trial.set_user_attr("seconds", round(outcome.seconds, 3))
    trial.set_user_attr("preprocessing", cand.summary())
    if outcome.peak_rss_mb > 0:  # measured under a memory limit: the final stage sizes its refits by it
        trial.set_user_attr("peak_mb", round(outcome.peak_rss_mb, 1))
    if outcome.error:
        trial.set_user_attr("error", outcome.error)
    if outcome.status == COMPLETE:
        v = outcome.value
        trial.set_user_attr("fold_scores", [round(s, 6) for s in v["fold_scores"]])
        trial.set_user_attr("cv_std", v["std"])
        trial.set_user_attr("fit_s", round(v["fit_s"], 3))
        trial.set_user_attr("fold_fit_s", round(v["fold_fit_s"], 3))
        trial.set_user_attr("predict_ms_per_row", round(v["predict_ms_per_row"], 5))
        if v["export_s"] is not None:
            trial.set_user_attr("export_s", round(v["export_s"], 3))
            trial.set_user_attr("onnx_bytes", int(v["onnx_bytes"]))
            trial.set_user_attr("onnx_ms_p50", v["onnx_ms_p50"])  # constraints.* estimates (search/deploy_cost.py)
            if v.get("stack_mb") is not None:  # what its process loaded to export: a refit that exports loads it too
                trial.set_user_attr("stack_mb", round(v["stack_mb"], 1))
            state.exported.setdefault(cand.family, []).append(v["export_s"] / max(v["fold_fit_s"], 0.01))
        else:  # not exported (worth_exporting): priced from its family's exports for the final stage
            trial.set_user_attr("export_s", round(estimated_export_s(state, cand.family, v["fold_fit_s"]), 3))
            trial.set_user_attr("export_estimated", True)
        state.scored.append((state.sign * v["mean"], cand.family))
        if v.get("threshold") is not None:
            trial.set_user_attr("threshold", round(v["threshold"], 6))
        if v.get("best_rounds"):  # early stopping on the inner split: the final stage refits with these rounds
            trial.set_user_attr("best_rounds", int(v["best_rounds"]))
            trial.set_user_attr("trained_rounds", int(v["trained_rounds"]))  # priced by search/budget.py refit_share
        if oof_dir is not None:
            oof_dir.mkdir(exist_ok=True)
            np.save(oof_file(oof_dir, trial.number), v["oof"])
        own = {k: v[k] for k in ("onnx_bytes", "onnx_ms_p50") if v.get(k) is not None}
        study.tell(trial, objective_values(study, trial, cand.family, v["mean"], own, state.objectives))
        res.completed += 1
    elif outcome.status == PRUNED:
        study.tell(trial, state=TrialState.PRUNED)
        res.pruned += 1
    elif outcome.status == INTERRUPTED:
        study.tell(trial, state=TrialState.FAIL)
        return outcome.status
    else:
        study.tell(trial, state=TrialState.FAIL)
        res.failed += 1
    # budget accounting survives a crash of the driver
    study.set_user_attr("budget_used_s", budget.used_before + time.time() - budget.start)
    return outcome.status


def objective_values(study: Any, trial: Any, family: str, score: float, own: dict[str, Any],
                     objectives: tuple[str, ...]) -> Any:
    """What the study is told for a completed trial: its CV score, then, in a multi-objective study, its
    graph's latency and size as the search measured them (`own`: its onnx_bytes and onnx_ms_p50, when it was
    exported), or an estimate where it was not (deploy_cost.cost_values); `objective_source` in its user attrs
    says which."""
    if len(objectives) == 1:
        return score
    from optuna.trial import TrialState

    measured = []
    if not all(k in own for k in ("onnx_bytes", "onnx_ms_p50")):
        measured = [(t.params.get("family", ""), t.user_attrs)
                    for t in study.get_trials(deepcopy=False, states=[TrialState.COMPLETE])]
    costs, source = cost_values(objectives[1:], own, family, measured)
    trial.set_user_attr("objective_source", source)
    return [score, *costs]


def trial_report(study: Any, trial: Any, cand: obj.Candidate, outcome: Outcome, budget: Budget,
                 res: SearchResult) -> dict[str, Any]:
    """What the progress line shows for a trial. `best` is the study's, read from the shared storage:
    with several workers every line shows the best of all their trials, so it only ever improves."""
    return {"number": trial.number, "family": cand.family, "status": outcome.status,
            "value": outcome.value["mean"] if outcome.status == COMPLETE else None,
            "best": study_best(study), "seconds": outcome.seconds, "left": budget.left(),
            "completed": res.completed, "failed": res.failed, "pruned": res.pruned, "error": outcome.error}


def end_interrupted(study: Any, trial: Any) -> None:
    """Ctrl-C / SIGTERM at any point of a trial (sampling included): it ends as interrupted, so the
    storage holds nothing RUNNING."""
    from optuna.trial import TrialState

    if oc.trial_state(study, trial) == TrialState.RUNNING:
        trial.set_user_attr("status", "INTERRUPTED")
        trial.set_user_attr("error", "interrupted: the run was stopped while this trial ran")
        study.tell(trial, state=TrialState.FAIL)
