"""Which ensemble the final stage tries first: Caruana selection over the best trials' out-of-fold predictions,
within the refit time the final stage's attempt will have."""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from automl.ensemble import SELECTION_ROUNDS, beats_best_single, selection_pool
from automl.evaluation.metrics import Metric
from automl.evaluation.threshold import scorer
from automl.io import RunPaths, fresh_oof_file
from automl.search.budget import Budget, trial_final_cost
from automl.search.objective import SearchData

log = logging.getLogger("automl")


def selection_oof(paths: RunPaths, number: int, scored: np.ndarray) -> np.ndarray:
    """A trial's OOF predictions on the scored rows as ensemble selection sees them: for a trial scored again
    on fresh folds, the mean of both (repeated CV). On pneumonia a lucky extra-trees trial (CV AUC 0.682, fresh
    folds 0.584) took 71% of the weight when only its first OOF was read; the ensemble scored 0.558 on test."""
    oof = np.load(paths.oof_file(number)).astype(np.float64)
    fresh = fresh_oof_file(paths.oof, number)
    if fresh.exists():
        oof = (oof + np.load(fresh).astype(np.float64)) / 2
    return oof[scored]


def select_ensemble(done: list[Any], data: SearchData, metric: Metric, paths: RunPaths, budget: Budget,
                    keep_s: float = 0.0) -> dict[str, Any] | None:
    """Caruana selection over the OOF predictions of the best completed trials, within the refit time left
    once `keep_s` (the last resort's time) is kept free, as the final stage's attempt will count it."""
    pool = selection_pool(done, lambda n: paths.oof_file(n).exists())
    if len(pool) < 2:
        return None
    oofs = [selection_oof(paths, t.number, data.scored) for t in pool]
    costs = [trial_final_cost(t.user_attrs, len(data.folds), budget, t.params.get("family", "")) for t in pool]
    score = scorer(metric, data.n_classes, data.task, data.tune_threshold)  # at the tuned threshold, if any
    t = time.perf_counter()
    score(data.oof_y, oofs[0])
    # the selection's own time (one score per pool member per round; 0.9 s on 14k rows x 11 classes)
    # comes out of the refit's room, which the attempt measures after it
    select_s = (time.perf_counter() - t) * len(pool) * SELECTION_ROUNDS
    # x1.15: the attempt's own tolerance (estimates err both ways)
    room = 1.15 * (budget.final_room() - budget.kept(keep_s) - select_s)
    sel, best_single, better = beats_best_single(oofs, data.oof_y, score, metric.greater_is_better, costs, room)
    log.info("ensemble selection: %d member(s), OOF %s %.5g vs best single %.5g", len(sel.members),
             metric.name, sel.score, best_single)
    if not better:
        return None
    return {"members": [(pool[i], w) for i, w in zip(sel.members, sel.weights, strict=True)],
            "oof_score": sel.score, "best_single_oof": best_single, "rounds": len(sel.history)}
