"""Holdout carve-out and cross-validation folds, seeded from the root seed.

One inner validation split instead of k folds when `n_folds` is 1 (search.validation; the inner split's
share follows `inner_share`).

Three structures, declared in the config (`data.group_column`, `data.time_column`):
- none: random rows (stratified by class for classification);
- groups: the holdout and every fold hold whole groups (stratified by class where it can be);
- time: the holdout is the latest share of rows and the folds chain forward (train on the past, validate
  on the next block, `search.time_gap` rows left out between them). With groups as well, each group is
  placed by its first time (its arrival) and stays whole in its block.
Rows that share a time value never straddle a boundary.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from automl.errors import UserError


@dataclass(frozen=True)
class Structure:
    """How the rows relate: a group code per row and/or an order (time) per row, aligned with y."""
    groups: np.ndarray | None = None  # int codes
    order: np.ndarray | None = None  # float, larger = later
    gap: int = 0  # time: rows left out between a fold's training rows and its validation block

    @property
    def kind(self) -> str:
        if self.order is not None:
            return "time+group" if self.groups is not None else "time"
        return "group" if self.groups is not None else "random"

    def take(self, idx: np.ndarray) -> Structure:
        """The structure of the rows `idx` (in that order)."""
        return Structure(None if self.groups is None else self.groups[idx],
                         None if self.order is None else self.order[idx], self.gap)


RANDOM = Structure()


def _units(s: Structure, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(unit code per row, units in time order): a unit is a group, or (time only) a distinct time value,
    so that a unit never straddles a boundary."""
    assert s.order is not None
    if s.groups is not None:
        codes = np.unique(s.groups, return_inverse=True)[1]
        first = np.full(codes.max() + 1, np.inf)
        np.minimum.at(first, codes, s.order)
        # ties between groups' first times: by group code, so the order is deterministic
        return codes, np.lexsort((np.arange(len(first)), first))
    codes = np.unique(s.order, return_inverse=True)[1]
    return codes, np.arange(codes.max() + 1 if n else 0)


def _blocks(codes: np.ndarray, ordered_units: np.ndarray, n_blocks: int) -> list[np.ndarray]:
    """Units in time order cut into `n_blocks` contiguous blocks of about equal row counts."""
    sizes = np.bincount(codes, minlength=len(ordered_units))[ordered_units]
    ends = np.cumsum(sizes)
    total = ends[-1] if len(ends) else 0
    cuts = [int(np.searchsorted(ends, total * b / n_blocks, side="left")) + 1 for b in range(1, n_blocks)]
    bounds = [0, *cuts, len(ordered_units)]
    return [ordered_units[bounds[b]:bounds[b + 1]] for b in range(n_blocks)]


def _rows_of(codes: np.ndarray, units: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.isin(codes, units))


def holdout_split(y: np.ndarray, task: str, share: float, seed: int,
                  structure: Structure = RANDOM) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, holdout); the holdout is never seen by the search."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    if share <= 0:
        return idx, idx[:0]
    if structure.order is not None:  # the latest units, until the share is reached
        codes, units = _units(structure, len(y))
        sizes = np.bincount(codes, minlength=len(units))[units]
        from_end = np.cumsum(sizes[::-1])
        n_hold_units = int(np.searchsorted(from_end, share * len(y), side="left")) + 1
        n_hold_units = min(max(n_hold_units, 1), len(units) - 1)
        ho = _rows_of(codes, units[len(units) - n_hold_units:])
        return np.setdiff1d(idx, ho), ho
    if structure.groups is not None:  # whole groups, stratified where it can be: one fold of ~1/share
        k = max(2, round(1 / share))
        tr, ho = group_folds(y, task, k, seed, structure.groups)[0]
        return np.sort(tr), np.sort(ho)
    strat = y if task != "regression" else None
    if strat is not None:
        _, counts = np.unique(y, return_counts=True)
        if counts.min() < 2:
            strat = None  # checked earlier for the folds; a 1-row class cannot be stratified
    tr, ho = train_test_split(idx, test_size=share, random_state=seed, stratify=strat)
    return np.sort(tr), np.sort(ho)


def group_folds(y: np.ndarray, task: str, n_folds: int, seed: int,
                groups: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds of whole groups; stratified by class for classification (StratifiedGroupKFold)."""
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    n_groups = len(np.unique(groups))
    k = min(n_folds, n_groups)
    if k < 2:
        raise UserError("data.group_column", f"{n_groups} group(s) are too few to split by group",
                        "Declare a column with more groups, or remove data.group_column.")
    X = np.zeros(len(y))
    if task != "regression":
        return [(np.sort(a), np.sort(b))
                for a, b in StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(X, y, groups)]
    return [(np.sort(a), np.sort(b))
            for a, b in GroupKFold(n_splits=k, shuffle=True, random_state=seed).split(X, y, groups)]


def forward_folds(n: int, n_folds: int, structure: Structure) -> list[tuple[np.ndarray, np.ndarray]]:
    """Forward chaining: n_folds + 1 time blocks; fold i trains on blocks 0..i (less `gap` rows at their
    end, whole units) and validates on block i + 1. The first block is never validated."""
    codes, units = _units(structure, n)
    k = min(n_folds, len(units) - 1)
    if k < 1:
        raise UserError("data.time_column", "all rows share one time value, so there is no past to train on",
                        "Declare a column that orders the rows, or remove data.time_column.")
    blocks = _blocks(codes, units, k + 1)
    sizes = np.bincount(codes, minlength=len(units))
    folds = []
    for i in range(1, k + 1):
        past = np.concatenate(blocks[:i])
        dropped = 0
        while structure.gap and len(past) > 1 and dropped + sizes[past[-1]] <= structure.gap:
            dropped += sizes[past[-1]]
            past = past[:-1]
        if len(blocks[i]) == 0 or len(past) == 0:
            continue
        folds.append((_rows_of(codes, past), _rows_of(codes, blocks[i])))
    return folds


INNER_MAX_SHARE = 0.2


def inner_share(n_rows: int) -> float:
    """The validation share of the one inner split: AutoGluon's holdout fraction when it tunes
    (autogluon.core.utils.utils.default_holdout_frac with hyperparameter_tune=True): 500/n within
    [0.1, 0.2] under 5,000 rows, else 2500/n within [0.01, 0.1], then doubled (at most 0.2), since the split
    chooses among many configurations and more validation rows make that choice less lucky."""
    n = max(n_rows, 1)
    share = max(0.1, min(0.2, 500.0 / n)) if n < 5000 else max(0.01, min(0.1, 2500.0 / n))
    return min(INNER_MAX_SHARE, 2.0 * share)


def inner_split(y: np.ndarray, task: str, seed: int, structure: Structure = RANDOM) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) of the one inner split, under the same structure rules as the folds: the latest
    block (time), whole groups (groups), else random rows stratified by class."""
    share = inner_share(len(y))
    if structure.order is not None:
        return forward_folds(len(y), max(1, round(1 / share) - 1), structure)[-1]
    if structure.groups is not None:
        return group_folds(y, task, max(2, round(1 / share)), seed, structure.groups)[0]
    return holdout_split(y, task, share, seed)


def cv_folds(y: np.ndarray, task: str, n_folds: int, seed: int,
             structure: Structure = RANDOM) -> list[tuple[np.ndarray, np.ndarray]]:
    """k folds; n_folds=1: the one inner validation split (`inner_split`)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if n_folds == 1:
        return [inner_split(y, task, seed, structure)]
    if structure.order is not None:
        return forward_folds(len(y), n_folds, structure)
    if structure.groups is not None:
        return group_folds(y, task, n_folds, seed, structure.groups)
    if task == "regression":
        k = min(n_folds, len(y))
        return list(KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y))))
    _, counts = np.unique(y, return_counts=True)
    k = min(n_folds, int(counts.min()))
    return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def scored_rows(folds: list[tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray:
    """Rows that some fold validates (all of them, except the first block of forward chaining)."""
    if not folds:
        return np.arange(n)
    return np.unique(np.concatenate([va for _, va in folds]))


def check_class_counts(y_labels, n_folds: int, holdout: float, target: str) -> None:
    """Each class needs rows in every training fold and in the holdout."""
    import pandas as pd

    counts = pd.Series(y_labels).value_counts()
    need = max(2, n_folds) + (1 if holdout > 0 else 0)
    small = counts[counts < need]
    if len(small):
        cls, cnt = small.index[0], int(small.iloc[0])
        raise UserError(f"column '{target}'", f"class {cls!r} has {cnt} row(s) but needs at least {need} "
                        f"({n_folds} CV folds plus the holdout)",
                        "Add rows of that class, merge or drop it, or lower search.cv_folds.")
