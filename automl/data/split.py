"""Holdout carve-out and cross-validation folds, seeded from the root seed."""
from __future__ import annotations

import numpy as np

from automl.errors import UserError


def holdout_split(y: np.ndarray, task: str, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, holdout); stratified for classification. The holdout is never seen by the search."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    if share <= 0:
        return idx, idx[:0]
    strat = y if task != "regression" else None
    if strat is not None:
        _, counts = np.unique(y, return_counts=True)
        if counts.min() < 2:
            strat = None  # checked earlier for the folds; a 1-row class cannot be stratified
    tr, ho = train_test_split(idx, test_size=share, random_state=seed, stratify=strat)
    return np.sort(tr), np.sort(ho)


def cv_folds(y: np.ndarray, task: str, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold, StratifiedKFold

    if task == "regression":
        k = min(n_folds, len(y))
        return list(KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y))))
    _, counts = np.unique(y, return_counts=True)
    k = min(n_folds, int(counts.min()))
    return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


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
