"""Grouped and time-ordered splits, asserted on the actual indices: a group never sits on both sides of a
holdout or a fold, no training row is later than a validation row, and the driver's recipe builds them."""
from __future__ import annotations

from itertools import pairwise

import numpy as np
import pandas as pd
import pytest

from automl.config.schema import DataConfig, RunConfig, SearchConfig, TaskConfig
from automl.config.validate import validate_config
from automl.data.split import Structure, cv_folds, holdout_split, scored_rows
from automl.data.structure import structure_of, suspects, time_order
from automl.errors import UserError
from automl.preprocessing.steps import GroupedFolds


def _frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"g": rng.integers(0, 40, n), "y": rng.integers(0, 2, n),
                         "t": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 200, n), unit="D"),
                         "x": rng.normal(size=n)})


def _no_shared_groups(groups: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    assert len(a) and len(b)
    assert not set(groups[a]) & set(groups[b])


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_group_holdout_and_folds_keep_groups_whole(task):
    df = _frame()
    s = structure_of(df, "g", "", 0)
    y = df["y"].to_numpy()
    tr, ho = holdout_split(y, task, 0.2, 0, s)
    assert len(np.intersect1d(tr, ho)) == 0 and len(tr) + len(ho) == len(y)
    _no_shared_groups(s.groups, tr, ho)
    inner = s.take(tr)
    folds = cv_folds(y[tr], task, 5, 0, inner)
    assert len(folds) == 5
    for a, b in folds:
        _no_shared_groups(inner.groups, a, b)
    assert len(scored_rows(folds, len(tr))) == len(tr)  # every row validated once


def test_time_holdout_is_the_latest_rows_and_folds_chain_forward():
    df = _frame()
    s = structure_of(df, "", "t", 0)
    y = df["y"].to_numpy()
    tr, ho = holdout_split(y, "binary", 0.2, 0, s)
    assert s.order[tr].max() < s.order[ho].min()  # ties stay on one side
    assert 0.2 <= len(ho) / len(y) < 0.3
    inner = s.take(tr)
    folds = cv_folds(y[tr], "binary", 4, 0, inner)
    assert len(folds) == 4
    for a, b in folds:
        assert inner.order[a].max() < inner.order[b].min()
    vals = [b for _, b in folds]
    assert all(inner.order[v1].max() < inner.order[v2].min() for v1, v2 in pairwise(vals))
    assert len(scored_rows(folds, len(tr))) < len(tr)  # the first block is never validated


def test_time_gap_leaves_rows_out_between_train_and_validation():
    df = _frame()
    s = structure_of(df, "", "t", 0)
    plain = cv_folds(np.zeros(len(df)), "regression", 3, 0, s)
    gapped = cv_folds(np.zeros(len(df)), "regression", 3, 0, Structure(order=s.order, gap=30))
    for (a0, b0), (a1, b1) in zip(plain, gapped, strict=True):
        assert np.array_equal(b0, b1)
        assert set(a1) < set(a0) and 0 < len(a0) - len(a1) <= 30
        assert s.order[a1].max() < s.order[b1].min()


def test_time_and_groups_keep_groups_whole_inside_time_blocks():
    df = _frame()
    s = structure_of(df, "g", "t", 0)
    y = df["y"].to_numpy()
    tr, ho = holdout_split(y, "binary", 0.2, 0, s)
    _no_shared_groups(s.groups, tr, ho)
    first = pd.Series(s.order).groupby(s.groups).min()
    assert first[np.unique(s.groups[tr])].max() <= first[np.unique(s.groups[ho])].min()  # placed by arrival
    inner = s.take(tr)
    for a, b in cv_folds(y[tr], "binary", 3, 0, inner):
        _no_shared_groups(inner.groups, a, b)
        f = pd.Series(inner.order).groupby(inner.groups).min()
        assert f[np.unique(inner.groups[a])].max() <= f[np.unique(inner.groups[b])].min()


def test_target_encoder_cross_fits_on_whole_groups():
    groups = np.repeat(np.arange(20), 5)
    folds = list(GroupedFolds(groups, 5, 0).split(np.zeros((100, 1)), np.zeros(100)))
    assert len(folds) == 5
    for a, b in folds:
        _no_shared_groups(groups, a, b)


def test_time_column_errors_name_the_field():
    with pytest.raises(UserError, match=r"data\.time_column"):
        time_order(pd.Series(["2024-01-01", "soon"]), "t")
    with pytest.raises(UserError, match=r"data\.time_column"):
        time_order(pd.Series([1.0, np.nan]), "t")
    with pytest.raises(UserError, match=r"data\.group_column"):
        cv_folds(np.zeros(10), "regression", 5, 0, Structure(groups=np.zeros(10, dtype=int)))


def test_profile_warns_of_an_undeclared_group_key_and_time_order():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(50), 6)
    df = pd.DataFrame({"patient": g, "x": rng.normal(size=300),
                       "visit_date": pd.date_range("2024-01-01", periods=300).astype(str),
                       "y": rng.normal(size=50)[g] + 0.01 * rng.normal(size=300)})
    warnings = suspects(df, "y", "regression", [])
    assert any("'patient' looks like a group key" in w and "data.group_column=patient" in w for w in warnings)
    assert any("'visit_date' looks like a time order" in w for w in warnings)
    assert not any("'x'" in w for w in warnings)


@pytest.mark.parametrize("task,data,search,field", [
    (TaskConfig(target="y", coverage=1.5), DataConfig(path="x.csv"), SearchConfig(), "task.coverage"),
    (TaskConfig(target="y"), DataConfig(path="x.csv"), SearchConfig(time_gap=5), "search.time_gap"),
    (TaskConfig(target="y"), DataConfig(path="x.csv", group_column="g", time_column="g"), SearchConfig(),
     "data.group_column"),
    (TaskConfig(target="y"), DataConfig(path="x.csv", time_column="y"), SearchConfig(), "data.time_column"),
])
def test_config_rules_name_the_field(task, data, search, field):
    with pytest.raises(UserError) as e:
        validate_config(RunConfig(data=data, task=task, search=search))
    assert str(e.value).startswith(field), str(e.value)
