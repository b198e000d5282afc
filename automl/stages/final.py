"""The final stage: from the ranked trials to one shipped graph.

A ladder of plans, each refitted, exported and parity-gated in a supervised child: the Caruana ensemble
(if it beats the best single on out-of-fold predictions), then every completed trial by rank (the first
that fits in the time left ships), then the last resorts, tried whatever the clock says. Each attempt
keeps time free for the next rung: the best-ranked model below it that fits beside it, so an attempt that
overruns is followed by the next-best model, not by the cheapest. The refit and
the supervisor are injected, so the ladder can be tested without fitting anything.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from automl.config.schema import RunConfig
from automl.ensemble import choose_floor, selection_pool
from automl.evaluation.threshold import for_members
from automl.io import RunPaths
from automl.memory import members_memory, over_limit, rows_after_memout, rows_within
from automl.search.budget import SAFETY, is_baseline, last_resort, trial_final_cost
from automl.search.objective import SearchData, candidate_from
from automl.search.supervisor import COMPLETE, MEMOUT, TIMEOUT, Outcome, supervise
from automl.stages.checkpoint import Checkpoint
from automl.stages.constraints import Gate
from automl.stages.ensemble_choice import select_ensemble
from automl.stages.gate import gated
from automl.stages.plan import Plan
from automl.stages.prepare import Prepared
from automl.stages.refit import extras_for, refit_export
from automl.stages.search import Searched, fewer_rows
from automl.stages.stack_choice import StackChoice, choose_stack, pool_head

log = logging.getLogger("automl")
MAX_RANKED_ATTEMPTS = 3  # refits tried before the ladder skips to the last resorts


@dataclass
class FinalResult:
    final: dict[str, Any]  # what was shipped ({} when nothing passed): model bytes, scores, parity, members
    status: str  # COMPLETE or FAILED
    error: str = ""
    ensemble_selection: dict[str, Any] | None = None
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


class FinalStage:
    """Runs the ladder for one run. `refit` and `run_supervised` default to the real ones."""
    def __init__(self, cfg: RunConfig, prep: Prepared, searched: Searched, paths: RunPaths, meta: dict[str, str],
                 refit: Callable[..., Any] = refit_export, run_supervised: Callable[..., Outcome] = supervise,
                 gate: Gate | None = None):
        self.cfg, self.prep, self.searched, self.paths, self.meta = cfg, prep, searched, paths, meta
        self.gate = gate  # deployment constraints (automl/stages/constraints.py), measured on each passing graph
        self.refit, self.run_supervised = refit, run_supervised
        self.budget = searched.budget
        self.data, self.final_data = searched.data, searched.final_data
        self.sample_note = ""  # why the plan last tried (the one that ships) skipped the larger final sample: its peak
        self.stack_mb = 0.0  # what exporting trials loaded to export (search/objective.py export_check)

    def cost_of(self, trial: Any, scale: float | None = None, full: bool = True) -> float:
        """Final-stage seconds for a trial, on the final sample (scale=1.0: on the search rows); full=False:
        without the refit on all rows (export.refit_full)."""
        b = self.budget if full else replace(self.budget, refit_full=False)
        return trial_final_cost(trial.user_attrs, len(self.data.folds), b, trial.params.get("family", ""), scale)

    def _oofs(self, plan: Plan) -> list[np.ndarray] | None:
        files = [self.paths.oof_file(tr.number) for tr, _ in plan.members]
        return [np.load(f)[self.data.scored] for f in files] if all(f.exists() for f in files) else None

    def combined_oof(self, plan: Plan) -> np.ndarray | None:
        """The plan's OOF predictions on the scored rows, as its graph combines its members: the weighted
        average, or the stacker's nested predictions. None when a member's OOF file is missing."""
        if plan.stack is not None:
            return plan.stack.oof
        oofs = self._oofs(plan)
        if oofs is None:
            return None
        oof = sum(w * o.astype(np.float64) for o, (_, w) in zip(oofs, plan.members, strict=True))
        assert isinstance(oof, np.ndarray)  # a plan has at least one member
        return oof

    def floor(self, oof: np.ndarray | None) -> float:
        """A probability floor for log loss, chosen on the OOF predictions of the final combination."""
        metric = self.data.metric
        if metric.name != "log_loss" or oof is None:
            return 0.0
        return choose_floor(oof, self.data.oof_y, lambda y, p: metric(y, p, self.data.n_classes))

    def threshold(self, oof: np.ndarray | None) -> float | None:
        """The binary decision threshold, on the OOF predictions of the final combination (threshold metrics)."""
        d = self.data
        return None if oof is None else for_members(d.metric, d.task, d.tune_threshold, d.oof_y, [oof], [1.0])

    def stack_pool(self, done: list[Any], keep_s: float) -> dict[str, Any] | None:
        """Where Caruana selection keeps the best single: the head of the pool a stack may take instead."""
        b = self.budget
        head = pool_head(selection_pool(done, lambda n: self.paths.oof_file(n).exists()), self.cost_of,
                         1.15 * (b.final_room() - b.kept(keep_s)))
        if head is None:
            log.info("stacking not tried: no two of the best trials fit the time left beside each other")
        return head

    def stacked(self, ens: dict[str, Any], keep_s: float) -> StackChoice | None:
        """The level-2 stacker over the selected ensemble's members, where it beats their Caruana weights on
        nested folds (automl/stages/stack_choice.py). Its fits run in the driver, in a few percent of the
        budget and at most half the slack the ensemble's refit leaves (at least 1% of the budget)."""
        plan = Plan("ensemble", ens["members"])
        oofs = self._oofs(plan)
        if oofs is None:
            return None
        b = self.budget
        slack = b.final_room() - b.kept(keep_s) - 1.15 * sum(self.cost_of(tr) for tr, _ in plan.members)
        # at least 1% of the budget, out of the refit's x1.15 tolerance (a regression stack's NNLS takes ms); with
        # budget.n_trials (the reproducible recipe) every nested fit runs whatever the clock, so two runs agree
        limit = min(0.03 * self.cfg.budget.time_s + 1.0, max(0.5 * slack, 0.01 * self.cfg.budget.time_s))
        return choose_stack(oofs, [w for _, w in plan.members], self.data, np.inf if self.budget.n_trials else limit)

    def run(self, done: list[Any]) -> FinalResult:
        """`done`: the completed trials, best first."""
        t0 = time.time()
        if not done:
            return FinalResult({}, "FAILED", "no trial completed within the budget")
        resorts = last_resort(done, self.cost_of, is_baseline, self.budget.final_room() + self.budget.grace_s)
        self.stack_mb = max(tr.user_attrs.get("stack_mb", 0.0) for tr in done)
        # kept free by every earlier attempt, so that the first last resort still fits in the budget
        fallback_s = 1.5 * self.cost_of(resorts[0], 1.0) + 0.5
        plans: list[Plan] = []
        # members are chosen within the room the attempt below will have, once a good single is kept
        # shippable should the ensemble overrun: an ensemble selected in more room than that is skipped
        ensemble_keep = self.safety_keep(done, resorts[0], fallback_s)
        ens = None
        # search.objectives with a cost: the front's best-score member ships (an ensemble is on no front)
        multi = len(getattr(self.searched.study, "directions", ())) > 1
        if ensemble_keep is not None and not multi:
            ens = select_ensemble(done, self.data, self.data.metric, self.paths, self.budget, keep_s=ensemble_keep)
        else:  # an ensemble that overran would leave only the last resort: the best single goes first
            log.info("ensemble not tried: no room to keep a model better than the last resort shippable after it")
        # search.stacking: a stack of the ensemble's members (or the pool's best few) first, where it won nested
        heads = None
        if self.cfg.search.stacking:
            heads = ens or (self.stack_pool(done, ensemble_keep) if ensemble_keep is not None and not multi else None)
        stack = self.stacked(heads, ensemble_keep or fallback_s) if heads else None
        plans += [Plan("stack", heads["members"], stack)] if heads is not None and stack is not None else []
        if ens is not None:
            plans.append(Plan("ensemble", ens["members"]))
        # then every completed trial by rank: the first that fits in the time left ships; the last resorts,
        # tried whatever the clock says, are the best of the cheap pipelines, then the cheapest one
        plans += [Plan("single", [(t, 1.0)]) for t in done]
        first_resort = len(plans)
        plans += [Plan("single", [(t, 1.0)]) for t in resorts]
        failures: list[str] = []
        attempts = 0
        failed: set[int] = set()  # trials whose single refit already failed: no second attempt as a resort
        unfit: set[tuple[int, ...]] = set()  # member sets whose refit did not run to the end
        selection = {k: v for k, v in ens.items() if k != "members"} if ens is not None else None
        if stack is not None:
            selection = {**(selection or {}), "stack": stack.to_json()}
        for i, plan in enumerate(plans):
            if attempts >= MAX_RANKED_ATTEMPTS and i < first_resort:
                continue
            if i >= first_resort and plan.members[0][0].number in failed and i < len(plans) - 1:
                continue
            if i < first_resort and plan.kind == "single" and plan.members[0][0].number in failed:
                continue  # failed the gate as an ensemble member: its refit alone would fail it too
            if plan.kind == "ensemble" and plan.member_set() in unfit:
                continue  # the same members' refit already overran or failed as a stack
            oof = self.combined_oof(plan)
            floor, threshold = self.floor(oof), self.threshold(oof)
            if i >= first_resort:
                keep = fallback_s
            elif plan.combined:
                keep = ensemble_keep or fallback_s
            else:  # the first resort's own ranked attempt keeps time for the resort after it, not for itself again
                nxt = resorts[1] if plan.members[0][0] is resorts[0] and len(resorts) > 1 else resorts[0]
                keep = self.next_rung_keep(plan, done[done.index(plan.members[0][0]) + 1:], failed, nxt,
                                           1.5 * self.cost_of(nxt, 1.0) + 0.5)
            outcome, fit_data, tried = self._attempt(plan, i >= first_resort, keep, floor, threshold, oof, failures,
                                                     last=i == len(plans) - 1)
            attempts += tried if plan.kind != "stack" else 0  # a stack and its averaged fallback count as one
            if outcome is not None and outcome.status == COMPLETE and "model" in outcome.value:
                cv = plan.cv(ens)
                why = self.gate.check(plan.label, cv, outcome.value["model"]) if self.gate else ""
                if why:  # a graph over a deployment limit: the next-ranked candidate goes, not counted as a failure
                    failures.append(f"{plan.label}: over the constraints ({why})")
                    failed |= {plan.members[0][0].number} if plan.kind == "single" else set()
                    attempts -= tried
                    continue
                final = self._shipped(plan, outcome.value, fit_data, ens, floor, threshold)
                if self.gate:
                    final["constraints"] = self.gate.report(final["cv_mean"])
                if failures:
                    final["fallback_reason"] = ("a better-ranked model could not be shipped: " + "; ".join(failures[:5])
                                                + (f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""))
                    top = plans[0]
                    final["intended"] = {"plan": top.label, "cv": top.cv(ens),
                                         "shipped_cv": final["cv_mean"]}
                return FinalResult(final, "COMPLETE", "", selection, failures, time.time() - t0)
            # it ran and failed: not again as a last resort, unless it ran out of a ranked attempt's time (vocabulary:
            # two linear refits stopped at 1.6 and 1.8 s were never retried as resorts, and the baseline shipped)
            if plan.kind == "single" and outcome is not None and outcome.status != TIMEOUT:
                failed.add(plan.members[0][0].number)
            if plan.kind == "stack" and (outcome is None or outcome.status != COMPLETE):
                unfit.add(plan.member_set())
            bad = (outcome.value or {}).get("parity_failed_members") if outcome is not None else None
            if plan.combined and plan.gate_apart and bad is None and outcome is not None and outcome.status == COMPLETE:
                # failed the gate in its own process, which cannot name the members that fail it on their own:
                # once more with the gate where the refit runs, which names them (a parity failure is rare)
                plans.insert(i + 1, replace(plan, gate_apart=False))
                first_resort += 1
            if plan.combined and bad:
                # the members that fail the gate on their own are dropped, and the ensemble re-selected without
                # them goes next: a k-NN member off by one neighbour on a near-tie row cost a whole ensemble
                failed |= {plan.members[j][0].number for j in bad}
                rest = [t for t in done if t.number not in failed]
                again = select_ensemble(rest, self.data, self.data.metric, self.paths, self.budget,
                                        keep_s=ensemble_keep or fallback_s)
                if again is not None:
                    plans.insert(i + 1, Plan("ensemble", again["members"]))
                    first_resort += 1
                    selection = {k: v for k, v in again.items() if k != "members"}
        return FinalResult({}, "FAILED",
                           "no candidate passed refit, export and the parity gate: " + "; ".join(failures),
                           selection, failures, time.time() - t0)

    def memory_limit(self) -> float:  # the refit's memory limit (MB; 0: none), as the search's trials had it
        return self.budget.trial_memory_mb if self.prep.memory_bound else 0.0

    def trial_rows(self) -> int:
        return max((len(tr) for tr, _ in self.data.folds), default=0)

    def footprint(self, plan: Plan) -> dict[str, Any]:
        return members_memory([tr.user_attrs for tr, _ in plan.members], self.stack_mb)

    def over_memory(self, plan: Plan, rows: int) -> str:
        """Why `plan` is not refitted on `rows` rows under the trial memory limit ("" to refit it)."""
        return "" if not (limit := self.memory_limit()) else over_limit(
            plan.label, trial_rows=self.trial_rows(), refit_rows=rows, limit_mb=limit, **self.footprint(plan))

    def rung_s(self, trial: Any, fallback_s: float) -> float:
        """Seconds kept free to ship `trial` (estimates err both ways), then the last resort."""
        return SAFETY * self.cost_of(trial) + fallback_s

    def safety_keep(self, done: list[Any], resort: Any, fallback_s: float) -> float | None:
        """Seconds the ensemble's attempt keeps free: enough to ship the best-ranked single that still leaves
        the ensemble the best single's cost (then the last resort), so an ensemble that overruns is followed
        by a model close to it, not by the cheapest one (a 60k-row run shipped a linear model 11% worse than
        its ensemble when the ensemble's refit overran). The last resort itself qualifies when it is the best
        single. None: only a worse last resort could follow."""
        room = self.budget.final_room()
        best = self.cost_of(done[0])
        for t in done:
            if t is resort:  # the last resort follows whatever happens: fine when it is the best single
                return fallback_s if t is done[0] else None
            need = self.rung_s(t, fallback_s)
            if self.budget.kept(need) + best <= 1.15 * room:
                return need
        return None

    def next_rung_keep(self, plan: Plan, below: list[Any], failed: set[int], resort: Any, fallback_s: float) -> float:
        """Seconds a single's attempt keeps free: enough to ship the best-ranked trial below it that fits
        beside it (then the last resort), else the last resort's time."""
        room = self.budget.final_room()
        cost = sum(self.cost_of(tr) for tr, _ in plan.members)
        for t in below:
            if t is resort:
                break
            if t.number in failed:
                continue
            need = self.rung_s(t, fallback_s)
            if cost <= 1.15 * (room - self.budget.kept(need)):
                return need
        return fallback_s

    def _attempt(self, plan: Plan, is_resort: bool, keep_s: float, floor: float, threshold: float | None,
                 oof: np.ndarray | None, failures: list[str],
                 last: bool = False) -> tuple[Outcome | None, SearchData, int]:
        """Refit, export and gate one plan: on sampled data the larger final sample first, keeping time to retry
        on the search rows (k-NN scoring the holdout grows faster than the rows); then, with export.refit_full,
        without the refit on all rows: the plan the search found, not the next one down. A try its trials' peaks
        say would pass the memory limit is not started, unless `last` (something must ship); one stopped over it is
        retried once on fewer rows (rows_after_memout). Returns (outcome of the last try or None, its rows, refits
        started)."""
        cfg, prep, budget, data = self.cfg, self.prep, self.budget, self.data
        cands = [(candidate_from(tr.params, tr.user_attrs.get("best_rounds")), w) for tr, w in plan.members]
        small = sum(self.cost_of(tr, 1.0) for tr, _ in plan.members)
        tries = ([(self.final_data, sum(self.cost_of(tr) for tr, _ in plan.members), True), (data, small, True)]
                 if self.final_data is not data else [(data, small, True)])
        if cfg.export.refit_full and len(prep.y_hold) and not is_resort:
            tries.append((data, sum(self.cost_of(tr, 1.0, full=False) for tr, _ in plan.members), False))
        fit_rows = (rows_within(trial_rows=self.trial_rows(), limit_mb=limit, rows=len(data.y), **self.footprint(plan))
                    if (limit := self.memory_limit()) else len(data.y))
        if fit_rows < len(data.y):  # the search rows too would pass the memory limit: as many as the peaks allow
            tries.append((fewer_rows(data, fit_rows, data.seed), small * fit_rows / len(data.y), False))
        outcome, fit_data, started, over, self.sample_note = None, data, 0, "the time left", ""
        shrunk: Any = None  # the rows a refit stopped over the memory limit is retried on, once
        for k, (fit_data, cost, full) in enumerate(tries):
            room = budget.final_room()
            resort = is_resort and fit_data is data
            # time kept free if this attempt fails: the retry on the search rows, and the next rung (keep_s)
            retry = 1.5 * small if fit_data is self.final_data and fit_data is not data else 0.0
            keep = budget.kept(retry + (0.0 if resort else keep_s))
            if cost > 1.15 * (room - keep) and not resort:  # estimates err both ways
                failures.append(f"{plan.label} on {len(fit_data.y)} rows: "
                                f"expected {cost:.1f}s, {room - keep:.1f}s left")
                continue
            why = "" if last or fit_data is shrunk else self.over_memory(
                plan, len(fit_data.y) + (len(prep.y_hold) if full and cfg.export.refit_full else 0))
            if why:  # over the memory limit: the next try (the search rows, no refit on all rows), else the next plan
                failures.append(why)
                over = "the memory limit"
                self.sample_note = why if fit_data is not data else self.sample_note
                continue
            started += 1
            # a refit that overruns its estimate (a loaded machine slowed HGB's refit 3x) is stopped in time
            # for its fallbacks; a last resort must ship something and gets 4x its estimate (at least 5 s),
            # since on a loaded machine a refit can take 3-4x
            limit = max(room, 4.0 * cost, 5.0) if resort else max(1.0, room - keep)
            kept = Checkpoint()  # the model the holdout scored, should the refit on all rows be stopped
            outcome = self.run_supervised(
                self.refit, (fit_data, cands, prep.X_hold, prep.y_hold, prep.classes, self.meta, cfg.export.parity_tol,
                             cfg.export.parity_rows, floor, cfg.export.refit_full and full,
                             min(1.5, 0.02 * cfg.budget.time_s), threshold,
                             replace(extras_for(data, None if oof is None else [oof], [1.0], cfg.task,
                                                prep.hold_groups, floor, threshold),
                                     trim_tol=(cfg.export.variant_tol if "trim" in cfg.export.variants else None),
                                     stacker=None if plan.stack is None else plan.stack.stacker,
                                     gate_apart=plan.gate_apart, checkpoint=True)),
                timeout_s=limit, memory_mb=self.memory_limit(), on_message=kept)
            outcome = gated(kept.settle(outcome), self.run_supervised, fit_data, prep.X_hold, prep.y_hold,
                            cfg.export.parity_tol, cfg.export.parity_rows, threshold, limit, self.memory_limit())
            if outcome.status == COMPLETE and "model" in outcome.value:
                if not full and cfg.export.refit_full:
                    outcome.value["refit_full_skipped"] = (f"its refit on all rows (export.refit_full) did not fit "
                                                           f"{over}: the graph is the model the holdout scored")
                elif stopped := outcome.value.pop("refit_full_stopped", ""):
                    outcome.value["refit_full_skipped"] = (f"its refit on all rows (export.refit_full) was stopped "
                                                           f"({stopped}): the graph is the model the holdout scored")
                return outcome, fit_data, started
            why = (outcome.value.get("parity_error") if outcome.status == COMPLETE
                   else f"{outcome.status}: {outcome.error}")
            failures.append(f"{plan.label} on {len(fit_data.y)} rows: {why}")
            log.error("final model (%s, %d rows) failed: %s", plan.label, len(fit_data.y), why)
            budget.grace_open = True
            if outcome.status == COMPLETE:  # a parity failure does not depend on the rows
                break
            if outcome.status == MEMOUT and shrunk is None and all(len(d.y) >= len(fit_data.y) for d, *_ in tries[k:]):
                shrunk = fewer_rows(data, n := rows_after_memout(len(fit_data.y)), data.seed)
                tries.append((shrunk, small * n / len(data.y), False))
        return outcome, fit_data, started

    def _shipped(self, plan: Plan, final: dict[str, Any], fit_data: SearchData, ens: dict[str, Any] | None,
                 floor: float, threshold: float | None) -> dict[str, Any]:
        single = plan.kind == "single"
        best = plan.members[0][0]
        cand = candidate_from(best.params, best.user_attrs.get("best_rounds"))
        # a stack is an ensemble to every reader of the run (card, leaderboard, report); `stacker` says how it combines
        final.update(kind="single" if single else "ensemble", trial=best.number if single else "ensemble",
                     family=best.params["family"] if single else "ensemble",
                     params=cand.params if single else {}, preprocessing=cand.summary() if single else "",
                     cv_mean=plan.cv(ens),
                     probability_floor=floor, decision_threshold=threshold,
                     # a stack combines its members by its stacker, not by weights: none are given for it
                     members=[{"trial": tr.number, "family": tr.params["family"],
                               **({} if plan.stack is not None else {"weight": round(w, 4)}),
                               "cv_mean": tr.values[0]} for tr, w in plan.members])
        if plan.stack is not None:
            final["stacker"] = plan.stack.to_json()
        final["fit_rows"] = len(fit_data.y)
        if len(fit_data.y) < len(self.data.y):
            final["fit_rows_reason"] = (f"as many of the {len(self.data.y)} search rows as its trials' measured peak "
                                        f"allows within the {self.memory_limit():.0f} MB trial limit")
        # what the search's reserve priced this plan at, beside what it took (timings): the card's record of
        # whether the final stage was given the time it needed
        final["estimated_s"] = round(sum(self.cost_of(tr, None if fit_data is self.final_data else 1.0)
                                         for tr, _ in plan.members), 2)
        sampled, n_hold = self.prep.sampled, len(self.prep.y_hold)
        if sampled is not None:
            sampled.info["final_model_rows"] = len(fit_data.y) + (n_hold if final.get("refit_full_rows") else 0)
            if fit_data is not self.final_data:
                sampled.info["final_sample_reason"] = (
                    f"{'the search sample' if fit_data is self.data else final['fit_rows_reason']}: the planned "
                    f"{len(self.final_data.y)}-row refit did not fit "
                    f"{'the memory limit' if self.sample_note else 'the time left'} "
                    f"(planned: {sampled.info['final_sample_reason']})")
                sampled.info["final_sample_rows"] = len(fit_data.y)
        return final
