"""Stacked or Caruana-weighted: how the final stage combines the ensemble's members, chosen on nested
out-of-fold scores.

Both combiners are fitted on the members' OOF predictions, so neither may be judged on them: each is
fitted on all parts but one of the scored rows and predicts the part left out, and the pooled predictions
are scored alike. The stacker ships only where it beats the Caruana weights of the same members that way
(or beats even their in-sample score, which flatters them).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from automl.ensemble import SELECTION_ROUNDS, greedy_select
from automl.evaluation.threshold import scorer
from automl.search.objective import SearchData
from automl.stacking import Stacker, apply, fit_stacker, stack_features
from automl.stages.refit import calibration_parts

log = logging.getLogger("automl")
# inverse regularisation of the logistic stacker, chosen on the nested folds in this order while time allows
# (regression: NNLS, no grid); the first is sklearn's default
STRENGTHS = (1.0, 10.0, 0.1)
STACK_POOL = 3  # members a stack may take where Caruana selection keeps the best single


def pool_head(pool: list[Any], cost: Callable[[Any], float], room: float) -> dict[str, Any] | None:
    """The best STACK_POOL trials of a diverse pool (the best single first) whose refits fit in `room`
    seconds, weighted as Caruana selection chose: all on the best single, the bar a stack must beat."""
    head = pool[:STACK_POOL]
    while len(head) >= 2 and sum(cost(t) for t in head) > room:
        head = head[:-1]
    return {"members": [(t, 1.0 if i == 0 else 0.0) for i, t in enumerate(head)]} if len(head) >= 2 else None


@dataclass(frozen=True)
class StackChoice:
    stacker: Stacker  # fitted on all scored rows' OOF predictions
    oof: np.ndarray  # the stack's nested OOF predictions on the scored rows
    score: float  # nested OOF score of the stack
    caruana_score: float  # OOF score of the Caruana weights over the same members it beat
    caruana_kind: str  # "nested", or "in-sample" (the weights chosen on these very rows: optimistic)
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {**self.stacker.to_json(), "nested_oof_score": self.score, "caruana_oof_score": self.caruana_score,
                "caruana_score_kind": self.caruana_kind, "seconds": round(self.seconds, 2)}


def nested_parts(data: SearchData) -> list[np.ndarray] | None:
    """Positions in the scored rows of each part a combiner is scored on: the search's folds, or on one
    inner split five random parts of its rows. None where the rows' structure forbids random parts (time
    order; groups on one inner split, whose random parts would split a group)."""
    if data.structure.order is not None:
        return None
    if len(data.folds) >= 2:
        return [np.searchsorted(data.scored, va) for _, va in data.folds]
    if data.structure.groups is not None:
        return None
    return [part for _, part in calibration_parts(len(data.scored), data.seed)]


class OutOfTime(Exception):
    """The nested fits ran past the time the final stage gave them."""


def nested(fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray], parts: Sequence[np.ndarray], n: int,
           shape: tuple[int, ...], deadline: float = np.inf) -> np.ndarray:
    """Predictions for every part from a combiner fitted on the other parts' rows; OutOfTime once
    time.perf_counter() passes `deadline` between two parts."""
    out = np.zeros((n, *shape[1:]))
    for held in parts:
        if time.perf_counter() > deadline:
            raise OutOfTime()
        train = np.setdiff1d(np.arange(n), held)
        out[held] = fit_predict(train, held)
    return out


def choose_stack(oofs: list[np.ndarray], weights: list[float], data: SearchData,
                 time_limit_s: float) -> StackChoice | None:
    """The stacker over these members' OOF predictions (scored rows), if its nested score beats the Caruana
    weights' and the choice fits in `time_limit_s`; else None. `weights`: the Caruana weights chosen on all
    rows. A stack whose nested score beats even their in-sample score (optimistic for Caruana) wins without
    the Caruana weights' own nested fits, which cost as much as the stacker's."""
    parts = nested_parts(data)
    if parts is None or len(oofs) < 2 or time_limit_s <= 0:
        return None
    t0 = time.perf_counter()
    y, task, metric = data.oof_y, data.task, data.metric
    score = scorer(metric, data.n_classes, task, data.tune_threshold)
    sign = 1.0 if metric.greater_is_better else -1.0
    F = stack_features(oofs, task)

    def caruana(train: np.ndarray, held: np.ndarray) -> np.ndarray:
        sel = greedy_select([o[train] for o in oofs], y[train], score, metric.greater_is_better,
                            rounds=SELECTION_ROUNDS)
        return np.sum([w * oofs[i][held].astype(np.float64) for i, w in zip(sel.members, sel.weights, strict=True)],
                      axis=0)

    deadline = t0 + time_limit_s

    def late() -> bool:
        return time.perf_counter() > deadline

    best: tuple[float, float, np.ndarray] | None = None
    try:
        in_sample = score(y, np.sum([w * o.astype(np.float64) for o, w in zip(oofs, weights, strict=True)], axis=0))
        for strength in (STRENGTHS if task != "regression" else (0.0,)):
            if late():
                break

            def stack(train: np.ndarray, held: np.ndarray, c: float = strength) -> np.ndarray:
                return apply(fit_stacker(F[train], y[train], task, data.n_classes, c, data.seed), F[held])

            pred = nested(stack, parts, len(y), oofs[0].shape, deadline)
            s = score(y, pred)
            if np.isfinite(s) and (best is None or sign * s > sign * best[0]):
                best = (s, strength, pred)
        if best is None:
            return None
        bar, kind = in_sample, "in-sample"
        if not sign * best[0] > sign * in_sample:
            if late():
                log.info("stacking: nested OOF %s %.5g, not better than Caruana weights' in-sample %.5g, and no "
                         "time to score those nested", metric.name, best[0], in_sample)
                return None
            bar, kind = score(y, nested(caruana, parts, len(y), oofs[0].shape, deadline)), "nested"
        if not sign * best[0] > sign * bar:
            log.info("stacking: nested OOF %s %.5g, not better than Caruana weights' %s %.5g", metric.name, best[0],
                     kind, bar)
            return None
        stacker = fit_stacker(F, y, task, data.n_classes, best[1], data.seed)
    except OutOfTime:
        if best is None:
            log.info("stacking not tried: its nested fits take longer than the %.1fs the final stage gives them",
                     time_limit_s)
            return None
        log.info("stacking: nested OOF %s %.5g, no time to score the Caruana weights' nested", metric.name, best[0])
        return None
    except (ValueError, np.linalg.LinAlgError) as e:  # a degenerate part (one class only) leaves Caruana
        log.info("stacking not tried: %s", e)
        return None
    log.info("stacking: nested OOF %s %.5g beats Caruana weights' %s %.5g", metric.name, best[0], kind, bar)
    return StackChoice(stacker, best[2], best[0], bar, kind, time.perf_counter() - t0)
