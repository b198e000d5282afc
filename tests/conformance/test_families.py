"""Conformance suite: every registered estimator family, with no per-family test code.

For each family and each task it supports: its search space file exists and loads; the family's
default configuration and 10 configurations sampled from its space (Optuna RandomSampler) build
and fit with the family's `toy_params` applied; predictions have the right shape; the same seed
gives identical predictions; and the exported ONNX graph follows the I/O contract and agrees with
the Python pipeline (on held-out rows, and on the same rows with missing values and unseen
categories injected).

The frames have continuous features (make_classification / make_regression), so k-NN distance
ties cannot make parity depend on tie-breaking, plus a datetime and a free-text column, so the
sampled feature-synthesis choices (search_spaces/preprocessing.yaml) are exported and checked too.
"""
from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_regression
from threadpoolctl import threadpool_limits

from automl.data.roles import infer_schema, to_model_frame
from automl.errors import ParityError
from automl.estimators import REGISTRY
from automl.estimators.spec import ALL_TASKS
from automl.evaluation.metrics import DEFAULT_METRIC, get_metric
from automl.export.contract import metadata
from automl.export.onnx import check_parity, export_onnx
from automl.search import objective as obj
from automl.search.space import DEFAULT_SPACE_DIR

optuna.logging.set_verbosity(optuna.logging.WARNING)

TASKS = ("binary", "multiclass", "regression")
CASES = [(spec.key, task) for spec in REGISTRY for task in TASKS if task in spec.tasks]
N_SAMPLED = 10
N_ROWS, N_TRAIN = 120, 90
CAT = "colour.name"  # a dot in the name: the graph input must still be called exactly this
WORDS = ["battery", "screen", "price", "delivery", "quality", "support", "refund", "broken", "great", "awful",
         "fast", "slow", "cheap", "solid", "cable", "charger", "works", "stopped", "returned", "recommend", "love",
         "hate", "box", "manual", "colour", "size", "fits", "light", "heavy"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Fits on 90 rows gain nothing from threads, and OpenMP barriers crawl on a busy 2-core box."""
    with threadpool_limits(limits=1):
        yield


def _frame(task: str) -> tuple[pd.DataFrame, np.ndarray, int]:
    rng = np.random.default_rng(0)
    if task == "regression":
        X, y = make_regression(N_ROWS, 4, n_informative=3, noise=5.0, random_state=0)
    else:
        X, y = make_classification(N_ROWS, 4, n_informative=3, n_redundant=0, random_state=0,
                                   n_classes=2 if task == "binary" else 3)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(4)])
    df[CAT] = rng.choice(["red", "green", "blue", "grey"], N_ROWS).astype(object)
    df.loc[rng.random(N_ROWS) < 0.1, "x1"] = np.nan
    df.loc[rng.random(N_ROWS) < 0.1, CAT] = None
    stamps = pd.Timestamp("2019-06-01") + pd.to_timedelta(rng.uniform(0, 3e7, N_ROWS).round(), unit="s")
    df["when"] = pd.Series(stamps.strftime("%Y-%m-%d %H:%M:%S")).where(rng.random(N_ROWS) > 0.1, None)
    df["note"] = [" ".join(rng.choice(WORDS, rng.integers(3, 9))) if rng.random() > 0.1 else None
                  for _ in range(N_ROWS)]
    df["y"] = y
    return df, y, 0 if task == "regression" else len(np.unique(y))


def _data(task: str, key: str) -> obj.SearchData:
    df, y, n_classes = _frame(task)
    schema = infer_schema(df, "y", [], [])
    assert [c.name for c in schema.features] == ["x0", "x1", "x2", "x3", CAT, "when", "note"]
    X = to_model_frame(df, schema)
    folds = [(np.arange(N_TRAIN), np.arange(N_TRAIN, N_ROWS))]
    return obj.SearchData(X=X, y=y, folds=folds, schema=schema, missing_numeric=["x1"], task=task,
                          metric=get_metric(DEFAULT_METRIC[task]), n_classes=n_classes, seed=0,
                          families=[key], n_jobs=1)


def _configs(data: obj.SearchData, key: str) -> list[obj.Candidate]:
    """The family's default configuration, then N_SAMPLED drawn by a seeded RandomSampler."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(obj.default_params(data, key))
    cands = []
    for _ in range(1 + N_SAMPLED):
        trial = study.ask()
        cands.append(obj.sample(trial, data))
        study.tell(trial, 0.0)
    return cands


def test_every_family_has_a_space_file_and_every_file_a_family():
    keys = {spec.key for spec in REGISTRY if not spec.space_dir}  # plugin families bring their own folder
    files = {p.stem for p in DEFAULT_SPACE_DIR.glob("*.yaml")} - {"preprocessing", "imbalance"}
    assert sorted(keys - files) == [], "families without search_spaces/<key>.yaml"
    assert sorted(files - keys) == [], "search_spaces/*.yaml files that no registered family uses"


@pytest.mark.parametrize("key", REGISTRY.keys())
def test_spec_is_well_formed_and_toy_params_reach_the_estimator(key: str):
    spec = REGISTRY.get(key)
    assert spec.tasks and spec.tasks <= ALL_TASKS
    assert spec.onnx in ("native", "registered") and spec.cost > 0
    for task in sorted(spec.tasks):
        est = spec.build(dict(spec.toy_params), task=task, seed=0)
        params = est.get_params()
        for name, value in spec.toy_params.items():
            assert params.get(name) == value, (task, name, params.get(name))


@pytest.mark.onnx
@pytest.mark.parametrize("key,task", CASES)
def test_family_conformance(key: str, task: str):
    spec = REGISTRY.get(key)
    data = _data(task, key)
    tr, va = data.folds[0]
    classes = list(range(data.n_classes)) if task != "regression" else None
    toy = dict(spec.toy_params)
    want_shape = (len(va), data.n_classes) if task != "regression" else (len(va),)
    cands = _configs(data, key)
    assert len(cands) == 1 + N_SAMPLED and all(c.family == key for c in cands)
    assert len({repr(c.params) + repr(c.pre) for c in cands}) > 1 or not data.spaces[key]  # really sampled

    problems = []
    for i, cand in enumerate(cands):
        where = f"config {i} {cand.params} {cand.pre}"
        pipe = obj.build(data, cand, toy).fit(data.X.iloc[tr], data.y[tr])
        pred = obj.predict(pipe, data.X.iloc[va], task, data.n_classes)
        if pred.shape != want_shape or not np.isfinite(pred).all():
            problems.append(f"{where}: predictions {pred.shape}, finite={np.isfinite(pred).all()}")
            continue
        if task != "regression" and not np.allclose(pred.sum(axis=1), 1.0, atol=1e-6):
            problems.append(f"{where}: probabilities do not sum to 1")
        again = obj.build(data, cand, toy).fit(data.X.iloc[tr], data.y[tr])
        if not np.array_equal(pred, obj.predict(again, data.X.iloc[va], task, data.n_classes)):
            problems.append(f"{where}: same seed, different predictions")

        meta = metadata(data.schema, task, "y", data.metric.name, classes, "test")
        model = export_onnx(pipe, data.schema, task, classes, meta)
        inputs = [(i.name, i.type.tensor_type.elem_type) for i in model.graph.input]
        # float x4, string, double (datetime: epoch seconds), string (text)
        assert inputs == [("x0", 1), ("x1", 1), ("x2", 1), ("x3", 1), (CAT, 8), ("when", 11), ("note", 8)], inputs
        outputs = [o.name for o in model.graph.output]
        assert outputs == (["label"] if task == "regression" else ["label", "probabilities"]), outputs
        assert {p.key for p in model.metadata_props} >= {"input_schema", "target", "task", "metric",
                                                         "engine_version"}
        try:
            report = check_parity(model, pipe, data.X.iloc[va], data.schema, task, 1e-5, seed=0)
            assert report["passed"] and report["rows_checked"] == 2 * len(va)
        except ParityError as e:
            problems.append(f"{where}: {e}")
    assert not problems, "\n".join(problems)
