"""Leakage canary: on pure noise, with resampling, target encoding of a high-cardinality ID and
feature selection in the pipeline, cross-validated and holdout ROC AUC must stay at chance (0.5 +/- 0.05).

A step fitted outside the folds breaks it: over-sampling before the split puts copies (or SMOTE
neighbours) of a validation row's minority rows into its training fold, and a target encoder fitted on
all rows hands every validation row a mean that includes its own target; a memorising forest then
scores far above 0.5.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl.data.roles import infer_schema, to_model_frame
from automl.data.split import cv_folds, holdout_split
from automl.evaluation.metrics import get_metric
from automl.search import objective as obj

N = 4000


def _noise(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({f"x{i}": rng.normal(size=N) for i in range(5)})
    df["colour"] = rng.choice(["red", "green", "blue", "black"], N).astype(object)
    # a random ID with ~7 rows per level: high cardinality, repeated, so a leaked target mean would stick
    df["customer"] = np.asarray([f"C{v:03d}" for v in rng.integers(0, 600, N)], dtype=object)
    df["y"] = (rng.random(N) < 0.2).astype(int)  # independent of every column
    return df


def _data(df: pd.DataFrame) -> tuple[obj.SearchData, pd.DataFrame, np.ndarray]:
    schema = infer_schema(df, "y", [], [])
    assert schema.names("categorical") == ["colour", "customer"]  # the ID is a feature, not dropped
    X_all, y_all = to_model_frame(df, schema), df["y"].to_numpy()
    tr, ho = holdout_split(y_all, "binary", 0.4, 0)
    X, y = X_all.iloc[tr].reset_index(drop=True), y_all[tr]
    data = obj.SearchData(X=X, y=y, folds=cv_folds(y, "binary", 3, 0), schema=schema, missing_numeric=[],
                          task="binary", metric=get_metric("roc_auc"), n_classes=2, seed=0,
                          families=["random_forest", "lightgbm"], n_jobs=1)
    return data, X_all.iloc[ho].reset_index(drop=True), y_all[ho]


# target encoding of the ID, then feature selection by relevance on the training fold (keep half)
PRE = {"native_nan": False, "num_impute": "median", "missing_indicator": False, "cat_encoding": "target",
       "rare_min_frequency": 0.0, "select": 0.5}


@pytest.mark.parametrize("family,params,imb", [
    ("random_forest", {"n_estimators": 30, "min_samples_leaf": 1, "max_features": 0.5},
     {"sampler": "random_over", "ratio": 1.0}),
    ("random_forest", {"n_estimators": 30, "min_samples_leaf": 1, "max_features": 0.5},
     {"sampler": "smote", "ratio": 1.0, "k_neighbors": 5}),
    ("lightgbm", {"n_estimators": 60, "num_leaves": 63, "min_child_samples": 2},
     {"sampler": "smote_enn", "ratio": 0.8, "k_neighbors": 5, "class_weight": "balanced"}),
    # each bag under-samples its own training rows; the bags' average must not see a validation row
    ("random_forest", {"n_estimators": 20, "min_samples_leaf": 1, "max_features": 0.5},
     {"sampler": "balanced_bagging", "ratio": 1.0, "n_bags": 5}),
])
def test_noise_stays_at_chance(family, params, imb):
    from sklearn.metrics import roc_auc_score

    data, X_hold, y_hold = _data(_noise())
    cand = obj.Candidate(family, params, dict(PRE), imb)
    res = obj.cross_validate(None, data, cand)
    cv_auc = res["mean"]  # mean over folds (pooled OOF AUC of noise is biased low)
    hold_auc = roc_auc_score(y_hold, obj.build(data, cand).fit(data.X, data.y).predict_proba(X_hold)[:, 1])
    assert abs(cv_auc - 0.5) < 0.05, cv_auc
    assert abs(hold_auc - 0.5) < 0.05, hold_auc
