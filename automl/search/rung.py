"""Rows as a resource on one inner split: a cheap first fit on a quarter of the training rows.

With one inner validation split (large data) the fold pruner has nothing to compare, so every trial paid
for a full fit. Each trial now first fits on RUNG_SHARE of the inner training rows (the same rows for
every trial, so rung scores compare configurations) and is scored on the whole validation split; a trial
below the median rung score of the earlier trials stops there (successive halving with a reduction
factor of 2, as Optuna's SuccessiveHalvingPruner and FLAML's sample growth judge most configurations on
fewer rows). `search.pruner=none` turns it off, as it does the fold pruner.
"""
from __future__ import annotations

from typing import Any

import numpy as np

RUNG_SHARE = 0.25
MIN_RUNG_ROWS = 2000  # fewer rows than this say too little about a configuration that will see 4x more
RUNG_STARTUP = 5  # rung scores of earlier trials before any trial is stopped at its rung
RUNG_STEP = 0  # the rung's intermediate value (the one split's full score is step 1)


def rung_rows(folds: list[tuple[np.ndarray, np.ndarray]], pruner: str) -> int:
    """Training rows of the rung fit, 0 for none: only one inner split, with the pruner on, and enough rows."""
    if pruner != "median" or len(folds) != 1:
        return 0
    n = int(RUNG_SHARE * len(folds[0][0]))
    return n if n >= MIN_RUNG_ROWS else 0


def rung_sample(train: np.ndarray, rows: int, seed: int) -> np.ndarray:
    """The rung's training rows: the same for every trial of the run."""
    return np.sort(np.random.default_rng(seed).choice(train, size=rows, replace=False))


def rung_prunes(study: Any, number: int, sign: int, score: float) -> bool:
    """Whether trial `number`, with this rung score, stops: below the median of every worker's earlier
    rung scores (completed or stopped trials), once there are RUNG_STARTUP of them. `sign`: +1 when a
    higher score is better."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    earlier = [sign * t.intermediate_values[RUNG_STEP] for t in trials
               if t.number != number and RUNG_STEP in t.intermediate_values]
    return len(earlier) >= RUNG_STARTUP and sign * score < float(np.median(earlier))
