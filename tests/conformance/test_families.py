"""Conformance suite: every registered estimator family, with no per-family test code.

For each family and task it supports: its search space file exists and loads; configurations
sampled from the space build and fit (iterations capped by `toy_params`); predictions have the
right shape; the same seed gives the same predictions; and the exported ONNX graph agrees with
the Python pipeline (missing values and unseen categories included).
"""
from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_regression

from automl.data.roles import infer_schema, to_model_frame
from automl.estimators import REGISTRY
from automl.evaluation.metrics import DEFAULT_METRIC, get_metric
from automl.export.onnx import check_parity, export_onnx, metadata
from automl.search import objective as obj
from automl.search.space import DEFAULT_SPACE_DIR

CASES = [(spec.key, task) for spec in REGISTRY for task in ("binary", "multiclass", "regression") if task in spec.tasks]


def _frame(task: str) -> tuple[pd.DataFrame, np.ndarray, int]:
    rng = np.random.default_rng(0)
    if task == "regression":
        X, y = make_regression(120, 4, noise=5.0, random_state=0)
    else:
        X, y = make_classification(120, 4, n_informative=3, n_redundant=0, random_state=0,
                                   n_classes=2 if task == "binary" else 3)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(4)])
    df["colour"] = rng.choice(["red", "green", "blue", "grey"], 120)
    df.loc[rng.random(120) < 0.1, "x1"] = np.nan
    df.loc[rng.random(120) < 0.1, "colour"] = None
    df["y"] = y
    return df, y, 0 if task == "regression" else len(np.unique(y))


def _data(task: str, families: list[str]) -> obj.SearchData:
    df, y, n_classes = _frame(task)
    schema = infer_schema(df, "y", [], [])
    X = to_model_frame(df, schema)
    folds = [(np.arange(90), np.arange(90, 120))]
    return obj.SearchData(X=X, y=y, folds=folds, schema=schema, missing_numeric=["x1"], task=task,
                          metric=get_metric(DEFAULT_METRIC[task]), n_classes=n_classes, seed=0,
                          families=families, n_jobs=1)


def test_every_family_has_a_space_file_and_every_file_a_family():
    files = {p.stem for p in DEFAULT_SPACE_DIR.glob("*.yaml")} - {"preprocessing"}
    assert files == set(REGISTRY.keys())


@pytest.mark.parametrize("key,task", CASES)
def test_family_conformance(key: str, task: str):
    spec = REGISTRY.get(key)
    data = _data(task, [key])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    cands = [obj.Candidate(key, {**obj.default_params(data, key)}, {})]
    cands = []
    for _ in range(6):  # sampled configurations, the default first
        trial = study.ask()
        if not cands:
            params = obj.default_params(data, key)
            study.enqueue_trial(params)
            study.tell(trial, 0.0)
            trial = study.ask()
        cands.append(obj.sample(trial, data))
        study.tell(trial, 0.0)
    tr, va = data.folds[0]
    classes = list(range(data.n_classes)) if task != "regression" else None
    for cand in cands:
        pipe = obj.build(data, cand, dict(spec.toy_params)).fit(data.X.iloc[tr], data.y[tr])
        pred = obj.predict(pipe, data.X.iloc[va], task, data.n_classes)
        assert pred.shape == ((len(va), data.n_classes) if task != "regression" else (len(va),))
        assert np.isfinite(pred).all()
        again = obj.build(data, cand, dict(spec.toy_params)).fit(data.X.iloc[tr], data.y[tr])
        np.testing.assert_array_equal(pred, obj.predict(again, data.X.iloc[va], task, data.n_classes))
        model = export_onnx(pipe, data.schema, task, classes, metadata(data.schema, task, "y", "m", classes, "t"))
        report = check_parity(model, pipe, data.X.iloc[va], data.schema, task, 1e-5, seed=0)
        assert report["passed"], (cand, report)
