"""Small transformers the engine needs that scikit-learn lacks in an ONNX-convertible form.

Each has a converter in automl/export/converters.py, so whatever the search picks still
exports as one graph.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
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
    `max_levels` most frequent, and unseen levels, to one level (bounds the width of the encoding)."""

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
            if len(vals) > self.max_levels:
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


class Float32Cast(TransformerMixin, BaseEstimator):
    """Make the Python pipeline see the float32 features the ONNX graph computes (compat.md P8)."""

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        check_is_fitted(self, "n_features_in_")
        return np.asarray(X, dtype=np.float32)
