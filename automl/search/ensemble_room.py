"""Whether the search keeps time for an ensemble's refit: only while an ensemble would be chosen.

The search keeps room for the final stage to refit one or two more pipelines (search/budget.py reserve).
When that room is all that is left, the completed trials' OOF predictions answer whether Caruana selection
beats the best single trial, the same question the final stage asks (automl/stages/final.py
select_ensemble). If it does not, the room goes to more trials instead of ending the run early: on German
health at 60 s the unused room was 6 of the 10 seconds a run left on the table.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from automl.ensemble import beats_best_single, selection_pool
from automl.evaluation.threshold import scorer
from automl.io import oof_file
from automl.search.budget import Budget, first_attempt_s, trial_final_cost
from automl.search.objective import SearchData

log = logging.getLogger("automl")


def ensemble_pays(ranked: list[Any], data: SearchData, oof_dir: Path, cost: Callable[[Any], float],
                  room: float) -> float | None:
    """Whether greedy selection over the pool of `ranked` (completed trials, best first), with members whose
    final-stage `cost` sums to at most `room` seconds, beats its best single member on the OOF rows: if so,
    the seconds its other members' refits add (extra_room_s), else None."""
    t0 = time.perf_counter()
    pool = selection_pool(ranked, lambda n: oof_file(oof_dir, n).exists())
    if len(pool) < 2:
        return None
    oofs = [np.load(oof_file(oof_dir, t.number)).astype(np.float64)[data.scored] for t in pool]
    score = scorer(data.metric, data.n_classes, data.task, data.tune_threshold)
    costs = [cost(t) for t in pool]
    # x1.15: the final stage's own tolerance (automl/stages/final.py select_ensemble)
    sel, best_single, pays = beats_best_single(oofs, data.oof_y, score, data.metric.greater_is_better,
                                               costs, 1.15 * room)
    log.info("ensemble room: %s (OOF %s %.5g vs best single %.5g, %.2fs)",
             "kept" if pays else "released to the search", data.metric.name, sel.score, best_single,
             time.perf_counter() - t0)
    return extra_room_s(costs, sel.members) if pays else None


def extra_room_s(costs: list[float], members: list[int]) -> float:
    """Seconds the members Caruana selection chose beside the best single (`costs[0]`) add to the final stage's
    first attempt: a fixed share kept whatever they cost left the budget unused (benchmarks/RESULTS.md,
    sessions 27-28)."""
    return sum(costs[i] for i in set(members) if i != 0)


def room_pays(study: Any, sign: int, data: SearchData, oof_dir: Path, budget: Budget,
              done: list[tuple[float, float, float, float]]) -> float | None:
    """ensemble_pays over every worker's completed trials, best first, within the room the search keeps for
    the final stage's first attempt. `sign`: +1 when a higher score is better; `done`: (score, cost) pairs."""
    from optuna.trial import TrialState

    ranked = sorted(study.get_trials(deepcopy=False, states=[TrialState.COMPLETE]), key=lambda t: -sign * t.values[0])
    n_folds = len(data.folds)
    return ensemble_pays(ranked, data, oof_dir,
                         lambda t: trial_final_cost(t.user_attrs, n_folds, budget, t.params.get("family", "")),
                         first_attempt_s(done, budget))
