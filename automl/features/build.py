"""The synthesis parts of a trial's ColumnTransformer, from its preprocessing choices.

Every part reads raw model-frame columns (the graph's inputs) and is fitted inside the fold:
- `dt`: date parts of datetime columns (always, when there are any: it is how dates are used);
- `dfs`: featuretools-enumerated arithmetic between numeric columns, top-k by relevance;
- `txtstat`: word and character counts of text columns;
- `poly`: degree-2 interactions of the k most relevant numeric columns (PolynomialFeatures);
- `pca`: principal components of the standardised numeric columns, appended.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from automl.data.roles import Schema

# featuretools primitive sets offered to the search
DFS_SETS = {
    "arithmetic": ("add_numeric", "subtract_numeric", "multiply_numeric", "divide_numeric"),
    "ratios": ("divide_numeric",),
    "products": ("multiply_numeric", "divide_numeric"),
}
DATETIME_SETS = {
    "basic": ("year", "month", "weekday", "hour"),
    "full": ("year", "month", "day", "weekday", "hour", "minute", "day_of_year"),
}


def _impute_scale(pre: Mapping[str, Any], always_impute: bool = False) -> list[tuple[str, Any]]:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    steps: list[tuple[str, Any]] = []
    if always_impute or not pre.get("native_nan", False):
        steps.append(("impute", SimpleImputer(strategy="median", keep_empty_features=True)))
    if pre.get("scaler", "none") != "none":
        # synthesised magnitudes (products, ratios) are unbounded: standardise, whatever the raw scaler
        steps.append(("scale", StandardScaler()))
    return steps


def synthesis_parts(pre: Mapping[str, Any], schema: Schema) -> list[tuple[str, Any, list[str]]]:
    from sklearn.decomposition import PCA
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    from automl.features.synthesis import DFSFeatures, RelevanceSelector

    parts: list[tuple[str, Any, list[str]]] = []
    num, dt, text = schema.names("numeric"), schema.names("datetime"), schema.names("text")
    if dt:
        parts_set = DATETIME_SETS[pre.get("datetime_parts", "full")]
        parts.append(("dt", Pipeline([("parts", DFSFeatures("datetime", parts_set, max_features=None)),
                                      *_impute_scale(pre)]), dt))
    if len(num) >= 2 and pre.get("dfs", False):
        dfs = DFSFeatures("numeric", DFS_SETS[pre.get("dfs_primitives", "arithmetic")],
                          max_features=int(pre.get("dfs_max_features", 10)))
        parts.append(("dfs", Pipeline([("dfs", dfs), *_impute_scale(pre)]), num))
    if text and pre.get("text_stats", False):
        parts.append(("txtstat", Pipeline([("counts", DFSFeatures("text", max_features=None)),
                                           *_impute_scale({**pre, "native_nan": True})]), text))
    if len(num) >= 2 and pre.get("poly", False):
        k = min(int(pre.get("poly_top_k", 4)), len(num))
        steps = _impute_scale(pre, always_impute=True)[:1] + [
            ("top", RelevanceSelector(keep=0.0, min_keep=k)),
            ("poly", PolynomialFeatures(degree=2, interaction_only=True, include_bias=False)),
        ]
        if pre.get("scaler", "none") != "none":
            steps.append(("scale", StandardScaler()))
        parts.append(("poly", Pipeline(steps), num))
    n_pca = min(int(pre.get("pca_components", 0)), len(num))
    if len(num) >= 2 and n_pca:
        parts.append(("pca", Pipeline([*_impute_scale(pre, always_impute=True)[:1], ("std", StandardScaler()),
                                       ("pca", PCA(n_components=n_pca, random_state=0))]), num))
    return parts
