"""Greedy ensemble selection (Caruana et al. 2004) over out-of-fold predictions, and the fitted ensemble.

Members are chosen with replacement on the OOF predictions of completed trials; weights are the
selection counts. The members are refit on all search rows and exported as one graph (the members'
graphs plus a weighted average: automl/export/onnx.py).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from automl.evaluation.metrics import labels_from_proba

SELECTION_ROUNDS = 25  # Caruana rounds (members picked with replacement)


@dataclass(frozen=True)
class Selection:
    members: list[int]  # indices into the candidate list
    weights: list[float]
    score: float  # OOF score of the weighted ensemble
    history: list[float]


def greedy_select(oofs: Sequence[np.ndarray], y: np.ndarray, score: Callable[[np.ndarray, np.ndarray], float],
                  greater_is_better: bool, costs: Sequence[float] | None = None, max_cost: float = np.inf,
                  rounds: int = 25, start: int | None = None) -> Selection:
    """Caruana's forward selection with replacement. `costs[i]` (refit seconds) may not sum past max_cost.
    `start`: the first member (default: the best single on these OOF predictions)."""
    sign = 1.0 if greater_is_better else -1.0
    first = int(np.argmax([sign * score(y, p) for p in oofs])) if start is None else start
    counts = np.zeros(len(oofs), dtype=int)
    counts[first] = 1
    total = oofs[first].astype(np.float64).copy()
    best_counts, best_val = counts.copy(), sign * score(y, oofs[first])
    history = [sign * best_val]
    used_cost = costs[first] if costs is not None else 0.0
    for _ in range(rounds - 1):
        n = counts.sum()
        vals = np.full(len(oofs), -np.inf)
        for i, p in enumerate(oofs):
            if counts[i] == 0 and costs is not None and used_cost + costs[i] > max_cost:
                continue
            vals[i] = sign * score(y, (total + p) / (n + 1))
        i = int(np.argmax(vals))
        if not np.isfinite(vals[i]):
            break
        if counts[i] == 0 and costs is not None:
            used_cost += costs[i]
        counts[i] += 1
        total += oofs[i]
        history.append(sign * vals[i])
        if vals[i] > best_val + 1e-12:
            best_val, best_counts = vals[i], counts.copy()
    members = [int(i) for i in np.flatnonzero(best_counts)]
    w = best_counts[members] / best_counts.sum()
    return Selection(members, [float(x) for x in w], float(sign * best_val), history)


def beats_best_single(oofs: Sequence[np.ndarray], y: np.ndarray, score: Callable[[np.ndarray, np.ndarray], float],
                      greater_is_better: bool, costs: Sequence[float],
                      max_cost: float) -> tuple[Selection, float, bool]:
    """Caruana selection over a pool's OOF predictions (best first) within `max_cost` refit seconds, the best
    single's score, and whether the selection (two members or more) beats it: the question the search asks
    before keeping room for an ensemble (search/ensemble_room.py) and the final stage before trying one.
    Selection starts from the pool's best-ranked trial, the one that would ship alone: on one inner split the
    ranking weighs the fresh split (stages/rescore.py) and these OOF predictions cannot: started from their
    best single, a trial lucky on them (0.8906, fresh split 0.8815) took 79% of an ensemble that left the
    re-ranked best out."""
    best_single = score(y, oofs[0])
    sel = greedy_select(oofs, y, score, greater_is_better, costs=costs, max_cost=max_cost, rounds=SELECTION_ROUNDS,
                        start=0)
    better = sel.score > best_single if greater_is_better else sel.score < best_single
    return sel, best_single, len(sel.members) >= 2 and better


def selection_pool(ranked: list[Any], has_oof: Callable[[int], bool]) -> list[Any]:
    """diverse_pool of the ranked trials whose OOF predictions are on file, the baseline aside: a constant per
    fold, in pooled OOF metrics (AUC) it shifts folds against each other, which can look like a gain that is
    not there on new data."""
    return diverse_pool([t for t in ranked if t.params.get("family") != "baseline" and has_oof(t.number)])


def diverse_pool(ranked: list[Any], top: int = 12, per_family: int = 2, cap: int = 24) -> list[Any]:
    """The best `top` trials plus the best `per_family` of every other family, best first. The top of a
    leaderboard is often one family in near-identical configurations (their OOF errors agree, so
    averaging them gains nothing); other families' best errors differ, which is what averaging needs."""
    pool = ranked[:top]
    seen = Counter(t.params.get("family", "") for t in pool)
    for t in ranked[top:]:
        fam = t.params.get("family", "")
        if len(pool) < cap and seen[fam] < per_family:
            pool.append(t)
            seen[fam] += 1
    return pool


def choose_floor(oof: np.ndarray, y: np.ndarray, score: Callable[[np.ndarray, np.ndarray], float],
                 grid: Sequence[float] = (0.001, 0.003, 0.01, 0.03)) -> float:
    """Smallest-loss probability floor eps for p' = (1 - eps) p + eps / C, at least grid[0].

    Log loss is unbounded: one confident miss on new data can cost more than every other row together,
    and OOF predictions of a confident model rarely show it. A floor bounds each row's loss."""
    c = oof.shape[1]
    vals = [score(y, (1 - e) * oof + e / c) for e in grid]
    return float(grid[int(np.argmin(vals))])


class WeightedEnsemble(BaseEstimator):
    """Weighted average of fitted pipelines' probabilities (classification) or predictions (regression),
    optionally mixed with the uniform distribution (`floor`, see choose_floor)."""

    def __init__(self, members: list[Any], weights: list[float], task: str, floor: float = 0.0):
        self.members = members
        self.weights = weights
        self.task = task
        self.floor = floor

    @property
    def classes_(self) -> np.ndarray:
        return self.members[0].classes_

    def predict_proba(self, X: Any) -> np.ndarray:
        p = sum(w * np.asarray(m.predict_proba(X), dtype=np.float64)
                for m, w in zip(self.members, self.weights, strict=True))
        assert isinstance(p, np.ndarray)  # members is never empty (sum() of nothing would be 0)
        return (1 - self.floor) * p + self.floor / p.shape[1] if self.floor else p

    def predict(self, X: Any) -> np.ndarray:
        if self.task == "regression":
            pred = sum(w * np.asarray(m.predict(X), dtype=np.float64).reshape(-1)
                       for m, w in zip(self.members, self.weights, strict=True))
            assert isinstance(pred, np.ndarray)  # members is never empty
            return pred
        return self.classes_[labels_from_proba(self.predict_proba(X))]
