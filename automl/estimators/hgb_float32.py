"""HistGradientBoosting whose split thresholds are exact in float32, so the ONNX graph splits alike.

Apart from the registry entry (hgb.py), so that importing the registry does not import scikit-learn."""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor


def snap_thresholds(est: Any) -> None:
    """Replace each split threshold t by the largest float32 <= t.

    The model sees float32 features (automl/preprocessing/steps.Float32Cast), so for every input
    x <= t and x <= floor32(t) decide alike: predictions do not change. The ONNX graph stores
    thresholds as float32; rounding t to nearest could land exactly on a data value and send it
    the other way (compat.md P8). After snapping, both runtimes compare against the same number.
    """
    for per_class in est._predictors:
        for predictor in per_class:
            t = predictor.nodes["num_threshold"]
            t32 = t.astype(np.float32)
            over = t32.astype(np.float64) > t
            t32[over] = np.nextafter(t32[over], np.float32(-np.inf))
            predictor.nodes["num_threshold"] = t32.astype(np.float64)


class Float32HGBClassifier(HistGradientBoostingClassifier):
    def fit(self, X, y, sample_weight=None):
        super().fit(X, y, sample_weight=sample_weight)
        snap_thresholds(self)
        return self


class Float32HGBRegressor(HistGradientBoostingRegressor):
    def fit(self, X, y, sample_weight=None):
        super().fit(X, y, sample_weight=sample_weight)
        snap_thresholds(self)
        return self
