"""Truncated SVD for text matrices whose vocabulary size is only known after fitting the vectoriser."""
from __future__ import annotations

from typing import Any

from sklearn.decomposition import TruncatedSVD


class TextSVD(TruncatedSVD):
    """TruncatedSVD that uses at most (terms - 1) components: a small fold's vocabulary may be narrower
    than the searched `n_components`. The parameter itself stays as asked (sklearn clone contract)."""

    n_components: int  # set by TruncatedSVD.__init__ (sklearn ships no types)

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        asked = self.n_components
        self.n_components = max(1, min(asked, X.shape[1] - 1))
        try:
            return super().fit_transform(X, y)
        finally:
            self.n_components = asked
