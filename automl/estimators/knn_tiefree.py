"""k-nearest neighbours without distance ties, so scikit-learn and the ONNX TopK pick the same ones.

Apart from the registry entry (knn.py), so that importing the registry does not import scikit-learn."""
from __future__ import annotations

import numpy as np
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

JITTER = 1e-4  # relative to each feature's spread


def _jitter(X: np.ndarray) -> np.ndarray:
    """Break exact distance ties among training points, deterministically.

    On discrete features many neighbours sit at exactly the same distance; scikit-learn and the ONNX
    TopK then pick different ones (parity breaks by whole neighbours). A 1e-4 offset per feature
    spread makes the order unambiguous in float32 and float64 alike and leaves the model unchanged.
    """
    X = np.asarray(X, dtype=np.float64)
    rng = np.random.default_rng(0)
    spread = np.where(np.ptp(X, axis=0) > 0, np.ptp(X, axis=0), 1.0) if len(X) else 1.0
    return (X + rng.uniform(-JITTER, JITTER, X.shape) * spread).astype(np.float32)


def _cap_neighbours(est: KNeighborsClassifier | KNeighborsRegressor, n_rows: int) -> None:
    # a small fold (or a small dataset) cannot supply more neighbours than it has rows
    est.n_neighbors = max(1, min(int(est.n_neighbors), n_rows))


class TieFreeKNeighborsClassifier(KNeighborsClassifier):
    def fit(self, X, y):
        _cap_neighbours(self, len(X))
        return super().fit(_jitter(X), y)


class TieFreeKNeighborsRegressor(KNeighborsRegressor):
    def fit(self, X, y):
        _cap_neighbours(self, len(X))
        return super().fit(_jitter(X), y)
