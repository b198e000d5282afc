"""Encoding defaults follow the profile: on an ID-like categorical (many levels, a few rows each) one-hot with
rare levels grouped at 1% folds the column into one and loses its signal; there every family's default is
target encoding without rare grouping, cross-fitted inside the folds and exported in the graph."""
from __future__ import annotations

import numpy as np
import pandas as pd

from automl.data.roles import infer_schema, to_model_frame
from automl.data.split import cv_folds
from automl.evaluation.metrics import get_metric
from automl.search import objective as obj


def _data(n_levels: int, n: int = 3000) -> obj.SearchData:
    rng = np.random.default_rng(0)
    effect = rng.normal(0, 2.0, n_levels)
    ids = rng.integers(0, n_levels, n)
    df = pd.DataFrame({"store": [f"s{i}" for i in ids], "x": rng.normal(size=n)})
    y = effect[ids] + 0.5 * df["x"].to_numpy() + rng.normal(0, 0.5, n)
    schema = infer_schema(df.assign(y=y), "y", [], [])
    assert schema.names("categorical") == ["store"]
    return obj.SearchData(X=to_model_frame(df, schema), y=y, folds=cv_folds(y, "regression", 3, 0), schema=schema,
                          missing_numeric=[], task="regression", metric=get_metric("rmse"), n_classes=0, seed=0,
                          families=["hist_gradient_boosting"], n_jobs=1)


def _candidate(data: obj.SearchData, **pre: object) -> obj.Candidate:
    params = obj.default_params(data, "hist_gradient_boosting")
    fam = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("hist_gradient_boosting.")}
    base = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("pre.")}
    return obj.Candidate("hist_gradient_boosting", fam, {**base, **pre}, {})


def test_few_levels_keep_one_hot_and_an_id_like_column_gets_target_encoding():
    few, many = _data(20), _data(600)
    assert not few.high_cardinality and many.high_cardinality
    assert _candidate(few).pre["cat_encoding"] == "onehot"
    default = _candidate(many)
    assert default.pre["cat_encoding"] == "target" and default.pre["rare_min_frequency"] == 0.0


def test_the_default_keeps_the_signal_one_hot_throws_away():
    data = _data(600)  # 5 rows per level: every level is under 1%
    chosen = obj.cross_validate(None, data, _candidate(data))  # exported and parity-checked (conn=None)
    onehot = obj.cross_validate(None, data, _candidate(data, cat_encoding="onehot", rare_min_frequency=0.01))
    assert chosen["onnx_bytes"] > 0
    # the level effects carry most of the variance (sd 2 vs 0.7 for the rest): one-hot keeps none of them
    assert chosen["mean"] < 0.5 * onehot["mean"], (chosen["mean"], onehot["mean"])
