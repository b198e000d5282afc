"""The baseline's pipeline reads the number of rows only: its graph takes every raw column (the ONNX contract)
but converts no encoder, it uses none of the preprocessing its trial draws (drawn all the same: multivariate
TPE with group=True models `family` with the preprocessing only while every trial carries both), and its
export is not priced by the data's categorical levels (what the last resort's keep and so the search's stop
rule rest on)."""
from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest

from automl.data.roles import infer_schema, to_model_frame
from automl.evaluation.metrics import get_metric
from automl.search import objective as obj
from automl.search.budget import Budget, trial_final_cost

LEVELS = 5_000


def _frame(task: str, n: int = 6_000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    codes = np.concatenate([np.arange(LEVELS), rng.integers(0, LEVELS, n - LEVELS)])
    x = rng.normal(size=n)
    df = pd.DataFrame({"code": pd.Series(codes).map("C{:05d}".format), "x": x,
                       "when": pd.Series(pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 9e6, n),
                                                                                       unit="s")).astype(str)})
    df["y"] = (x + rng.normal(size=n) if task == "regression"
               else np.where(x + rng.normal(size=n) > 0, "yes", "no") if task == "binary"
               else rng.choice(["a", "b", "c"], n))
    return df


def _data(task: str) -> obj.SearchData:
    df = _frame(task)
    schema = infer_schema(df, "y", [], [])
    assert schema.features[0].name == "code" and schema.features[0].role == "categorical"
    y = df["y"].to_numpy() if task == "regression" else pd.factorize(df["y"], sort=True)[0]
    n = len(df)
    return obj.SearchData(X=to_model_frame(df, schema), y=y, folds=[(np.arange(n - 500), np.arange(n - 500, n))],
                          schema=schema, missing_numeric=[], task=task,
                          metric=get_metric("rmse" if task == "regression" else "log_loss"),
                          n_classes=0 if task == "regression" else len(np.unique(y)), seed=0,
                          families=["baseline", "linear"], n_jobs=1)


@pytest.mark.onnx
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_the_baseline_graph_takes_every_column_and_converts_no_encoder(task: str):
    from automl.export.contract import metadata
    from automl.export.onnx import check_parity, export_onnx

    data = _data(task)
    classes = None if task == "regression" else list(range(data.n_classes))
    meta = metadata(data.schema, task, "y", data.metric.name, classes, "test")
    tr, va = data.folds[0]
    graphs = {}
    for family in ("baseline", "linear"):
        study = optuna.create_study()
        study.enqueue_trial(obj.default_params(data, family))
        trial = study.ask()
        cand = obj.sample(trial, data)
        assert any(k.startswith("pre.") for k in trial.params)  # drawn for every family (the sampler's groups)
        assert obj.candidate_from(trial.params).pre == cand.pre
        pipe = obj.build(data, cand).fit(data.X.iloc[tr], data.y[tr])
        graphs[family] = model = export_onnx(pipe, data.schema, task, classes, meta)
        assert [i.name for i in model.graph.input] == ["code", "x", "when"]
        report = check_parity(model, pipe, data.X.iloc[va], data.schema, task, 1e-5, seed=0)
        assert report["passed"]
        if family == "baseline":
            assert cand.pre == {} and cand.imb == {}
            pred = obj.predict(pipe, data.X.iloc[va], task, data.n_classes)
            assert np.ptp(pred, axis=0).max() == 0.0  # one constant row
    ops = {n.op_type for n in graphs["baseline"].graph.node}
    assert not ops & {"LabelEncoder", "OneHotEncoder", "CategoryMapper"}, ops
    # the linear model's graph maps the 5,000 levels; the baseline's holds a few constants
    assert graphs["baseline"].ByteSize() < 20_000 < graphs["linear"].ByteSize()


def test_the_baselines_final_cost_ignores_the_categorical_levels():
    budget = Budget(start=0.0, time_s=20.0, export_levels=50_000)
    attrs = {"seconds": 1.0, "fold_fit_s": 0.05, "export_s": 0.1, "export_estimated": True}
    base = trial_final_cost(attrs, 3, budget, "baseline")
    linear = trial_final_cost(attrs, 3, budget, "linear")
    assert base < 2.0 and linear - base > 6.0  # 7e-5 s per level per export, two exports
    budget.export_levels = 0
    assert trial_final_cost(attrs, 3, budget, "baseline") == pytest.approx(base)
