"""Conformal outputs inside the graph (task.coverage): measured coverage on held-out rows is within a few
points of the target on real datasets (regression and classification), through onnxruntime alone, and the
graph's `interval` / `prediction_set` match the same rule on the Python pipeline's output."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from automl.data.roles import infer_schema, infer_task, to_model_frame
from automl.data.split import cv_folds, holdout_split
from automl.data.target import prepare_target
from automl.evaluation.conformal import Conformal, conformal_quantile, evaluate
from automl.evaluation.metrics import DEFAULT_METRIC, get_metric
from automl.export.onnx import export_onnx
from automl.export.uncertainty import add_conformal, check_conformal_parity, graph_output
from automl.search import objective as obj

DATA = Path(__file__).resolve().parents[1] / "data"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets"
HGB = {"learning_rate": 0.1, "max_leaf_nodes": 15, "min_samples_leaf": 20, "max_iter": 60}
PRE = {"native_nan": True, "cat_encoding": "ordinal", "rare_min_frequency": 0.0}


def measure(path: Path, target: str, coverage: float, holdout: float = 0.3,
            class_conditional: bool = False) -> dict[str, float]:
    df = pd.read_csv(path)
    df = df[df[target].notna()].reset_index(drop=True)
    task = infer_task(df[target])
    y_all, classes = prepare_target(df, target, task)
    schema = infer_schema(df, target, [], [])
    X_all = to_model_frame(df, schema)
    tr, ho = holdout_split(y_all, task, holdout, 0)
    X, y = X_all.iloc[tr].reset_index(drop=True), y_all[tr]
    n_classes = len(classes) if classes is not None else 0
    data = obj.SearchData(X=X, y=y, folds=cv_folds(y, task, 5, 0), schema=schema, missing_numeric=[], task=task,
                          metric=get_metric(DEFAULT_METRIC[task]), n_classes=n_classes, seed=0,
                          families=["hist_gradient_boosting"], n_jobs=1, imbalance=False)
    cand = obj.Candidate("hist_gradient_boosting", dict(HGB), dict(PRE))
    oof = obj.cross_validate(None, data, cand)["oof"]
    conf = Conformal.fit(task, data.oof_y, oof[data.scored], coverage, class_conditional)
    pipe = obj.build(data, cand).fit(X, y)
    model = add_conformal(export_onnx(pipe, schema, task, classes, {}), conf)
    X_hold = X_all.iloc[ho].reset_index(drop=True)
    outs = graph_output(model, X_hold, schema, len(y))
    name = "interval" if task == "regression" else "prediction_set"
    res = evaluate(conf, y_all[ho], np.asarray(outs[name]))
    res["parity"] = check_conformal_parity(model, pipe, X_hold, schema, conf, 1e-5, len(y))["passed"]
    return res


def test_quantile_is_the_finite_sample_one():
    scores = np.arange(1, 10, dtype=float)  # n = 9: ceil(10 * 0.9) = 9th smallest
    assert conformal_quantile(scores, 0.9) == 9.0
    assert conformal_quantile(scores, 0.5) == 5.0


@pytest.mark.parametrize("file,target", [
    ("slid_wages_600.csv", "wages"), ("medpar_600.csv", "died"), ("penguins.csv", "species"),
    ("aids_600.csv", "status"),
])
def test_coverage_on_held_out_rows(file, target):
    res = measure(DATA / file, target, 0.9)
    assert res["parity"]
    assert abs(res["coverage"] - 0.9) < 0.07, res  # ~180 held-out rows: 3 standard errors


def test_class_conditional_sets_cover_each_class():
    res = measure(DATA / "penguins.csv", "species", 0.9, class_conditional=True)
    assert res["parity"] and res["coverage"] >= 0.83, res


FULL = [("slid_wages.csv", "wages"), ("star_math.csv", "tmathssk"), ("schooling.csv", "lwage76"),
        ("medpar.csv", "died"), ("pneumonia.csv", "hospital"), ("aids.csv", "status"), ("penguins.csv", "species")]


@pytest.mark.slow
@pytest.mark.parametrize("file,target", FULL)
def test_coverage_on_the_shared_datasets(file, target):
    if not SHARED.is_dir():  # data beside the checkout, not a component CI installs
        pytest.skip("../shared/datasets is not next to this checkout")
    for coverage in (0.8, 0.9):
        res = measure(SHARED / file, target, coverage, holdout=0.2)
        print(f"\n{file} target {coverage} measured {res['coverage']:.3f} "
              f"{'width' if 'mean_width' in res else 'set size'} "
              f"{res.get('mean_width', res.get('mean_set_size')):.3f} rows {res['rows']}")
        assert res["parity"]
        assert abs(res["coverage"] - coverage) < 0.05, res


def test_a_cluster_of_equal_scores_survives_the_refit():
    """A class-prior model: OOF p(majority) differs a little between folds, the refit's sits in between. The
    set threshold lies halfway to the next distinct score, so the refit's rows are all covered (no empty sets)
    and the OOF coverage is what the plain quantile gives."""
    rng = np.random.default_rng(0)
    y = (rng.random(1000) < 0.02).astype(int)
    p_major = np.repeat([0.9799, 0.9801, 0.9800, 0.9802, 0.9798], 200)
    oof = np.stack([p_major, 1 - p_major], axis=1)
    conf = Conformal.fit("binary", y, oof, 0.8)
    refit = np.array([[0.9795, 0.0205]] * 50)  # refit on all rows: a shade below every fold's
    sets = conf.prediction_set(refit)
    assert sets[:, 0].all() and not sets[:, 1].any()
    plain = 1.0 - conformal_quantile(1.0 - oof[np.arange(1000), y], 0.8)
    assert not (refit[:, 0] >= plain).any()  # at the plain quantile every refit set would be empty
    assert conf.prediction_set(oof)[np.arange(1000), y].mean() >= 0.8
