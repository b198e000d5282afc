"""Small transformers the engine needs that scikit-learn lacks in an ONNX-convertible form.

Each has a converter in automl/export/converters.py, so whatever the search picks still
exports as one graph.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import sklearn
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

RARE = "__rare__"


class NaNIndicator(TransformerMixin, BaseEstimator):
    """1.0 where a numeric value is missing (NaN), else 0.0; one output column per input column."""
    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        check_is_fitted(self, "n_features_in_")
        return np.isnan(np.asarray(X, dtype=np.float32)).astype(np.float32)

    def get_feature_names_out(self, input_features: Sequence[str] | None = None):
        names = input_features if input_features is not None else [f"x{i}" for i in range(self.n_features_in_)]
        return np.asarray([f"{n}_missing" for n in names], dtype=object)


class RareGrouper(TransformerMixin, BaseEstimator):
    """Map levels seen in fewer than `min_frequency` (share) of training rows, levels beyond the
    `max_levels` most frequent (0: no cap), and unseen levels, to one level (bounds the width of a one-hot
    encoding; a target or ordinal encoding is one column whatever the levels, so it keeps them all)."""

    def __init__(self, min_frequency: float = 0.0, max_levels: int = 100):
        self.min_frequency = min_frequency
        self.max_levels = max_levels

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=object)
        self.n_features_in_ = X.shape[1]
        self.levels_ = []
        for j in range(X.shape[1]):
            vals, counts = np.unique(X[:, j].astype(str), return_counts=True)
            keep = counts >= max(1.0, self.min_frequency * X.shape[0])
            vals, counts = vals[keep], counts[keep]
            if self.max_levels and len(vals) > self.max_levels:
                top = np.argsort(-counts, kind="stable")[: self.max_levels]
                vals = np.sort(vals[top])
            self.levels_.append([str(v) for v in vals])
        return self

    def transform(self, X):
        check_is_fitted(self, "levels_")
        X = np.asarray(X, dtype=object)
        out = np.empty(X.shape, dtype=object)
        for j, levels in enumerate(self.levels_):
            col = X[:, j].astype(str)
            out[:, j] = np.where(np.isin(col, levels), col, RARE)
        return out

    def get_feature_names_out(self, input_features: Sequence[str] | None = None):
        if input_features is None:
            input_features = [f"x{i}" for i in range(self.n_features_in_)]
        return np.asarray(list(input_features), dtype=object)


class OutlierClipper(TransformerMixin, BaseEstimator):
    """Clip each numeric column to bounds learned in fit: `iqr` (Tukey fences, 1.5 IQR beyond the
    quartiles) or `winsor` (the 1st and 99th percentiles). Missing values pass through."""

    def __init__(self, method: str = "iqr"):
        self.method = method

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=np.float64)
        self.n_features_in_ = X.shape[1]
        lo, hi = np.full(X.shape[1], -np.inf), np.full(X.shape[1], np.inf)
        for j in range(X.shape[1]):
            col = X[:, j][~np.isnan(X[:, j])]
            if len(col) < 4:
                continue
            if self.method == "iqr":
                q1, q3 = np.percentile(col, [25, 75])
                fence_lo, fence_hi = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
            else:
                fence_lo, fence_hi = np.percentile(col, [1, 99])
            # snap the bounds to observed values inside the fences: clipping then only merges values into
            # existing ones, and creates no new value a float32 tree threshold could fall next to
            lo[j], hi[j] = col[col >= fence_lo].min(), col[col <= fence_hi].max()
        # bounds as float32, the precision the graph compares in
        self.lower_ = lo.astype(np.float32)
        self.upper_ = hi.astype(np.float32)
        return self

    def transform(self, X):
        check_is_fitted(self, "lower_")
        X = np.asarray(X, dtype=np.float32)
        X = np.where(self.upper_ < X, self.upper_, X)
        return np.where(self.lower_ > X, self.lower_, X).astype(np.float32)


class SkewLog(TransformerMixin, BaseEstimator):
    """log1p for columns that are non-negative and right-skewed (skew > `threshold`) in training;
    other columns pass unchanged. Negative values at inference count as 0."""

    def __init__(self, threshold: float = 1.0):
        self.threshold = threshold

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=np.float64)
        self.n_features_in_ = X.shape[1]
        mask = []
        for j in range(X.shape[1]):
            col = X[:, j][~np.isnan(X[:, j])]
            if len(col) < 3 or col.min() < 0 or col.std() == 0:
                mask.append(False)
                continue
            skew = float(np.mean(((col - col.mean()) / col.std()) ** 3))
            mask.append(skew > self.threshold)
        self.mask_ = np.asarray(mask, dtype=bool)
        return self

    def transform(self, X):
        check_is_fitted(self, "mask_")
        X = np.asarray(X, dtype=np.float32).copy()
        m = self.mask_
        if m.any():
            sub = X[:, m]
            X[:, m] = np.log1p(np.where(sub < 0, np.float32(0), sub)).astype(np.float32)
        return X


class Float32Cast(TransformerMixin, BaseEstimator):
    """Make the Python pipeline see the float32 features the ONNX graph computes (compat.md P8)."""
    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        check_is_fitted(self, "n_features_in_")
        return np.asarray(X, dtype=np.float32)


class RowsOnly(TransformerMixin, BaseEstimator):
    """One column of zeros per row, whatever the input: all a constant model (the baseline) needs of the data
    is how many rows there are. Its pipeline reads one raw column through this instead of encoding them all, so
    its graph holds no encoder (one of 50,000 categorical levels cost ~3.4 s to export: benchmarks/RESULTS.md,
    session 40) and pricing the last resort on it keeps no such time."""
    def fit(self, X, y=None):
        self.n_features_in_ = np.shape(X)[1]
        return self

    def transform(self, X):
        check_is_fitted(self, "n_features_in_")
        return np.zeros((len(X), 1), dtype=np.float32)

    def get_feature_names_out(self, input_features: Sequence[str] | None = None):
        return np.asarray(["rows"], dtype=object)


class SeededFolds:
    """Five shuffled folds drawn with a fixed seed, stratified unless the target is continuous: the
    folds `TargetEncoder(random_state=seed)` cross-fits on. scikit-learn 1.9 deprecated `random_state`
    there and takes the splitter as `cv` instead."""

    def __init__(self, n_splits: int = 5, seed: int = 0, target_type: str = "auto"):
        self.n_splits = n_splits
        self.seed = seed
        self.target_type = target_type

    def _splitter(self, y: Any) -> Any:
        from sklearn.model_selection import KFold, StratifiedKFold
        from sklearn.utils.multiclass import type_of_target

        kind = type_of_target(y) if self.target_type == "auto" else self.target_type
        cls = StratifiedKFold if kind in ("binary", "multiclass") else KFold
        return cls(n_splits=self.n_splits, shuffle=True, random_state=self.seed)

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self._splitter(y).split(X, y)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.n_splits


class GroupedFolds:
    """Five folds of whole groups for TargetEncoder's cross-fitting (data.group_column): a row's encoding
    never comes from rows of its own group, as it will not for a new group in production. `groups` is
    aligned with the rows the encoder is fitted on."""

    def __init__(self, groups: Any, n_splits: int = 5, seed: int = 0):
        self.groups = groups
        self.n_splits = n_splits
        self.seed = seed

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        from sklearn.model_selection import GroupKFold

        g = np.asarray(self.groups)
        k = max(2, min(self.n_splits, len(np.unique(g))))
        return GroupKFold(n_splits=k, shuffle=True, random_state=self.seed).split(X, y, g)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return max(2, min(self.n_splits, len(np.unique(np.asarray(self.groups)))))


def _sklearn_at_least(major: int, minor: int) -> bool:
    parts = sklearn.__version__.split(".")
    return (int(parts[0]), int(parts[1])) >= (major, minor)


def target_encoder(target_type: str = "auto", seed: int = 0) -> Any:
    """scikit-learn's TargetEncoder cross-fitting on the same seeded folds on every supported version
    (before 1.9 `cv` takes only a fold count, from 1.9 `random_state` warns)."""
    from sklearn.preprocessing import TargetEncoder

    if _sklearn_at_least(1, 9):
        return TargetEncoder(target_type=target_type, cv=SeededFolds(5, seed, target_type))
    return TargetEncoder(target_type=target_type, random_state=seed)
