"""Robust selection on small data: the best trials scored again on fresh folds before the final stage chooses.

The best CV mean of many trials on a few thousand rows is partly luck (the winner's curse): on the
bundled demo the chosen pipeline's CV log loss was 0.023 and its holdout 0.140, and on a 2,800-row
binary task a trial chosen at CV AUC 0.68 scored 0.51 on new rows. The top trials are cross-validated
once more on folds drawn with another seed; they are ranked by the mean of both estimates (repeated
k-fold CV, for the few trials that decide what ships), and the card reports how far the chosen trial's
estimate dropped. The search keeps the time for it (`Budget.rescore_top`, search/budget.py reserve).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from automl.data.split import cv_folds
from automl.io import fresh_oof_file
from automl.search.budget import (
    SOLO_RATIO,
    Budget,
    cv_seconds,
    is_baseline,
    rescore_s,
    reserve,
    room_when,
    trial_final_cost,
)
from automl.search.objective import SearchData, candidate_from, cross_validate
from automl.search.supervisor import COMPLETE, supervise

log = logging.getLogger("automl")
RESCORE_TOP = 5  # trials scored again: enough to reorder the top of a leaderboard, cheap on small data
RESCORE_MAX_ROWS = 4000  # search rows up to which the search uses 5 folds and trials cost about a second
FRESH_SEED_OFFSET = 7919  # fresh folds: another seed derived from the root seed


def rescore_top(setting: int, data: SearchData) -> int:
    """How many trials to score again (search.rescore: -1 = auto): on small data scored by k-fold CV, and on
    data scored by one inner split (one validation split is the noisiest estimate), with random or grouped
    rows (time-ordered folds are the same blocks whatever the seed)."""
    if setting >= 0:
        return setting
    noisy = len(data.y) <= RESCORE_MAX_ROWS or len(data.folds) == 1
    return RESCORE_TOP if noisy and data.structure.order is None else 0


def fresh_data(data: SearchData) -> SearchData:
    """The same rows with folds (or the one inner split) drawn with another seed."""
    folds = cv_folds(data.y, data.task, len(data.folds), data.seed + FRESH_SEED_OFFSET, data.structure)
    return dataclasses.replace(data, folds=folds, rung_rows=0)  # every re-scored trial is scored in full


def reorder(done: list[Any], fresh: dict[int, float], greater_is_better: bool) -> list[Any]:
    """`done` (best first) with the re-scored trials ranked among themselves by the mean of their two
    estimates, in the places they held; every other trial (the baseline) keeps its place. A trial whose
    re-score failed drops below those that passed it."""
    slots = [i for i, t in enumerate(done) if t.number in fresh]
    sign = -1.0 if greater_is_better else 1.0

    def key(t: Any) -> tuple[int, float]:
        f = fresh[t.number]
        return (1, 0.0) if not np.isfinite(f) else (0, sign * (t.values[0] + f) / 2)

    out = list(done)
    for i, t in zip(slots, sorted((done[i] for i in slots), key=key), strict=True):
        out[i] = t
    return out


def rescore(done: list[Any], data: SearchData, budget: Budget, top: int,
            oof_dir: Path | None = None) -> tuple[list[Any], dict[str, Any] | None]:
    """(done re-ranked, the record for the manifest). Scores the best `top` trials on fresh folds while the
    time kept for it lasts; a trial that does not finish in time keeps its place. With `oof_dir`, a
    re-scored trial's fresh out-of-fold predictions are kept beside its own when the fresh folds score the
    same rows (k-fold CV): ensemble selection averages the two (automl/stages/final.py)."""
    if top <= 0 or len(done) < 2:
        return done, None
    t0 = time.time()
    sign = 1.0 if data.metric.greater_is_better else -1.0
    # the baseline is a constant: its score on other folds tells nothing about luck
    head = [t for t in done if t.params.get("family") != "baseline"][:top]
    # what the search kept for it, and never the time the final stage will need
    costs = [trial_final_cost(t.user_attrs, len(data.folds), budget, t.params.get("family", "")) for t in done]
    kept = reserve([(sign * t.values[0], c, room_when(budget, getattr(t, "datetime_complete", None)),
                     float(is_baseline(t))) for t, c in zip(done, costs, strict=True)], budget)
    # x1.5 what the trials took (x1.5 / SOLO_RATIO what the search expects): a re-score can take longer than
    # the trial did (estimates err both ways), within what is free.
    # A fixed trial count (budget.n_trials) is the reproducible recipe: every one of the best trials is scored
    # again whatever the clock says, within the time left, so two runs re-score the same trials
    counted = budget.n_trials > 0
    took = [(sign * t.values[0], cv_seconds(t.user_attrs)) for t in head]
    expected = rescore_s(took, dataclasses.replace(budget, rescore_top=top))
    allowed = budget.left() - kept if counted else min(
        1.5 * expected / (SOLO_RATIO if budget.concurrent else 1.0), budget.left() - kept)
    fresh_set = fresh_data(data)
    fresh: dict[int, float] = {}

    def answer(msg: Any) -> str:
        return "skip" if msg[0] == "export?" else "go"  # no export: the final stage exports what ships

    for t in head:
        left = allowed - (time.time() - t0)
        limit = left if counted else max(1.0, 2.0 * cv_seconds(t.user_attrs))
        if left < 0.5 * limit or left <= 0:  # too costly for what is left: a cheaper one below it may still fit
            continue
        timeout = min(limit, max(left, 1.0))
        out = supervise(cross_validate, (fresh_set, candidate_from(t.params)), timeout_s=timeout,
                        memory_mb=budget.trial_memory_mb, on_message=answer)
        fresh[t.number] = float(out.value["mean"]) if out.status == COMPLETE else float("nan")
        log.info("re-scored trial %d (%s): %s in %.2fs of its %.2fs limit (fork %.2fs, exit %.2fs)", t.number,
                  t.params.get("family"), out.status, out.seconds, timeout, out.start_s, out.reap_s)
        if out.status == COMPLETE and oof_dir is not None and np.array_equal(fresh_set.scored, data.scored):
            np.save(fresh_oof_file(oof_dir, t.number), out.value["oof"])
    if len(fresh) < 2:
        log.info("best trials not re-scored: %.1fs left for it", allowed)
        return done, None
    greater = data.metric.greater_is_better
    ranked = reorder(done, fresh, greater)
    # the search's best and the new best among the trials scored again (a baseline above them keeps its place)
    before = next(t for t in done if t.number in fresh)
    winner = next(t for t in ranked if t.number in fresh)
    record = {
        "folds": len(fresh_set.folds), "seconds": round(time.time() - t0, 2),
        "trials": [{"trial": t.number, "family": t.params.get("family"), "cv": t.values[0],
                    "fresh_cv": None if not np.isfinite(fresh[t.number]) else fresh[t.number],
                    "mean": None if not np.isfinite(fresh[t.number]) else (t.values[0] + fresh[t.number]) / 2}
                   for t in done if t.number in fresh]
        + [{"trial": t.number, "family": t.params.get("family"), "cv": t.values[0], "fresh_cv": None, "mean": None}
           for t in head if t.number not in fresh],
        "best_before": before.number, "best_after": winner.number,
        # how optimistic the search's best estimate was: its CV minus its score on fresh folds
        "drop": (None if not np.isfinite(fresh[before.number])
                 else (before.values[0] - fresh[before.number]) * (1 if greater else -1)),
    }
    log.info("re-scored the top %d trials on fresh folds in %.1fs: best trial %d -> %d (the search's best "
             "estimate minus its fresh-fold score: %s)", len(fresh), record["seconds"], before.number, winner.number,
             "?" if record["drop"] is None else f"{record['drop']:.4g}")
    return ranked, record
