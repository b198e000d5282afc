"""Build the inference pipeline for one trial: ColumnTransformer -> float32 -> estimator.

Every step here is ONNX-convertible; numeric features are float32 on the way in, as in the graph.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from automl.data.roles import Schema
from automl.features.build import synthesis_parts
from automl.features.synthesis import RelevanceSelector
from automl.features.text import TextSVD
from automl.preprocessing.steps import (
    Float32Cast,
    GroupedFolds,
    NaNIndicator,
    OutlierClipper,
    RareGrouper,
    RowsOnly,
    SkewLog,
    target_encoder,
)


def _scaler(name: str) -> Any:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler, PowerTransformer, RobustScaler, StandardScaler

    return {
        "standard": StandardScaler,
        "minmax": MinMaxScaler,
        "robust": RobustScaler,
        # standardise first: the power transform of raw magnitudes (e.g. 4000**lambda) loses float32 parity
        "yeo_johnson": lambda: Pipeline([("std", StandardScaler()),
                                         ("power", PowerTransformer(method="yeo-johnson", standardize=True))]),
    }[name]()


# a missing-value indicator needs this many missing rows: with fewer, its weight is not estimable (a weakly
# regularised linear model learned "all measurements missing -> Adelie" from one row, and one test row
# with the same pattern but another species then cost 0.12 log loss by itself)
MIN_MISSING_FOR_INDICATOR = 5


def indicator_columns(X: Any, numeric: list[str]) -> list[str]:
    """Numeric columns that get a missing-value indicator when the trial asks for indicators."""
    return [c for c in numeric if int(X[c].isna().sum()) >= MIN_MISSING_FOR_INDICATOR]


def build_preprocessor(pre: Mapping[str, Any], schema: Schema, missing_numeric: list[str],
                       target_type: str = "auto") -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    parts: list[tuple[str, Any, Any]] = []
    num = schema.names("numeric")
    if num:
        steps: list[tuple[str, Any]] = []
        if pre.get("outliers", "none") != "none":
            steps.append(("clip", OutlierClipper(pre["outliers"])))
        if pre.get("skew_log", False):
            steps.append(("log", SkewLog()))
        if not pre.get("native_nan", False):
            strategy = pre.get("num_impute", "median")
            steps.append(("impute", SimpleImputer(strategy=strategy, fill_value=0.0, keep_empty_features=True)))
        scaler = pre.get("scaler", "none")
        if scaler != "none":
            steps.append(("scale", _scaler(scaler)))
        parts.append(("num", Pipeline(steps) if steps else "passthrough", num))
        if pre.get("missing_indicator", False) and not pre.get("native_nan", False) and missing_numeric:
            parts.append(("nan", NaNIndicator(), list(missing_numeric)))
    cat = schema.names("categorical")
    if cat:
        impute = SimpleImputer(missing_values="", strategy=pre.get("cat_impute", "constant"),
                               fill_value="__missing__")
        encoding = pre.get("cat_encoding", "onehot")
        if encoding == "onehot":
            enc = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        elif encoding == "target":
            # fit_transform cross-fits internally, so the training rows never see their own target
            enc = target_encoder(target_type, seed=0)
        else:
            enc = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
        parts.append(("cat", Pipeline([("impute", impute),
                                       ("rare", RareGrouper(float(pre.get("rare_min_frequency", 0.0)),
                                                            max_levels=100 if encoding == "onehot" else 0)),
                                       ("encode", enc)]), cat))
    for i, col in enumerate(schema.names("text")):
        parts.append((f"text{i}", text_vectorizer(pre), col))

    parts += synthesis_parts(pre, schema)
    return ColumnTransformer(parts, sparse_threshold=0.0, remainder="drop", verbose_feature_names_out=False)


def text_vectorizer(pre: Mapping[str, Any]) -> Any:
    """TF-IDF (default) or bag of words, optionally reduced by truncated SVD (searched choices)."""
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.pipeline import Pipeline

    kind = TfidfVectorizer if pre.get("text_vectorizer", "tfidf") == "tfidf" else CountVectorizer
    vec = kind(max_features=2000, lowercase=True, min_df=2, token_pattern=r"(?u)\b\w\w+\b")
    n_svd = int(pre.get("text_svd", 0))
    if not n_svd:
        return vec
    return Pipeline([("vec", vec), ("svd", TextSVD(n_components=n_svd, random_state=0))])


def build_pipeline(estimator: Any, pre: Mapping[str, Any], schema: Schema, missing_numeric: list[str],
                   task: str = "") -> Any:
    from sklearn.pipeline import Pipeline

    target_type = {"binary": "binary", "multiclass": "multiclass", "regression": "continuous"}.get(task, "auto")
    steps = [("pre", build_preprocessor(pre, schema, missing_numeric, target_type))]
    if float(pre.get("select", 1.0)) < 1.0:  # feature selection after synthesis, fitted on the training fold
        steps.append(("select", RelevanceSelector(keep=float(pre["select"]), task=task or "auto")))
    return Pipeline([*steps, ("cast", Float32Cast()), ("est", estimator)])


def build_constant_pipeline(estimator: Any, schema: Schema) -> Any:
    """The pipeline of a family that predicts a constant (EstimatorSpec.uses_features False): the first raw
    column through RowsOnly, for the number of rows. Its graph still takes every raw column (the ONNX contract:
    skl2onnx keeps each declared input) but converts no encoder."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    pre = ColumnTransformer([("rows", RowsOnly(), [schema.features[0].name])], sparse_threshold=0.0,
                            remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("pre", pre), ("cast", Float32Cast()), ("est", estimator)])


def set_groups(pipe: Any, groups: Any, seed: int = 0) -> Any:
    """Make every TargetEncoder of `pipe` cross-fit on whole groups (`groups`: one per row `pipe` will be
    fitted on, data.group_column). A group with one value cannot be split: left to the seeded folds."""
    from sklearn.preprocessing import TargetEncoder

    if groups is None or len(set(groups.tolist())) < 2:
        return pipe
    for name, step in pipe.get_params().items():
        if isinstance(step, TargetEncoder):
            pipe.set_params(**{f"{name}__cv": GroupedFolds(groups, 5, seed)})
    return pipe
