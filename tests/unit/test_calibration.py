"""Calibration chosen on out-of-fold predictions: it improves the cross-fitted OOF log loss of a
miscalibrated family (k-NN with few neighbours: probabilities in steps of 1/k), and the graph applies
exactly the calibrator the Python pipeline does (parity on probabilities and labels)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from automl.data.roles import infer_schema, infer_task, to_model_frame
from automl.data.split import cv_folds, holdout_split
from automl.data.target import prepare_target
from automl.evaluation.calibration import Calibrated, Calibrator, choose, log_loss, reliability
from automl.evaluation.metrics import get_metric
from automl.export.onnx import check_parity, export_onnx
from automl.search import objective as obj

DATA = Path(__file__).resolve().parents[1] / "data"
PRE = {"native_nan": False, "num_impute": "median", "scaler": "standard", "cat_encoding": "onehot",
       "rare_min_frequency": 0.0}


def _oof(file: str, target: str, cand: obj.Candidate) -> tuple[obj.SearchData, np.ndarray, pd.DataFrame, np.ndarray]:
    df = pd.read_csv(DATA / file)
    if file == "penguins.csv":  # the weak columns only: a k-NN that is often wrong and sure of it
        df = df[["species", "bill_depth_mm", "body_mass_g", "year"]]
    task = infer_task(df[target])
    y_all, _ = prepare_target(df, target, task)
    schema = infer_schema(df, target, [], [])
    X_all = to_model_frame(df, schema)
    tr, ho = holdout_split(y_all, task, 0.25, 0)
    X, y = X_all.iloc[tr].reset_index(drop=True), y_all[tr]
    data = obj.SearchData(X=X, y=y, folds=cv_folds(y, task, 5, 0), schema=schema, missing_numeric=[], task=task,
                          metric=get_metric("log_loss"), n_classes=int(y_all.max()) + 1, seed=0,
                          families=[cand.family], n_jobs=1, imbalance=False)
    return data, obj.cross_validate(None, data, cand)["oof"].astype(np.float64), X_all.iloc[ho], y_all[ho]


KNN = obj.Candidate("knn", {"n_neighbors": 5, "weights": "uniform"}, dict(PRE))


@pytest.mark.parametrize("file,target,methods", [
    ("medpar_600.csv", "died", {"sigmoid", "isotonic"}), ("penguins.csv", "species", {"temperature"})])
def test_calibration_improves_oof_log_loss_of_knn(file, target, methods):
    data, oof, _, _ = _oof(file, target, KNN)
    choice = choose("auto", data.y, oof, [va for _, va in data.folds])
    assert choice.calibrator.method in methods, choice.oof_log_loss
    assert choice.oof_log_loss[choice.calibrator.method] < choice.oof_log_loss["none"] - 0.05, choice.oof_log_loss
    before, after = reliability(data.y, oof), reliability(data.y, choice.calibrated_oof)
    assert after["brier"] <= before["brier"] + 1e-3


@pytest.mark.parametrize("method", ["sigmoid", "isotonic", "temperature"])
def test_graph_applies_the_calibrator(method):
    file, target = ("penguins.csv", "species") if method == "temperature" else ("medpar_600.csv", "died")
    data, oof, X_hold, y_hold = _oof(file, target, KNN)
    cal = Calibrator.fit(method, data.y, oof)
    pipe = Calibrated(obj.build(data, KNN).fit(data.X, data.y), cal)
    model = export_onnx(pipe, data.schema, data.task, list(range(data.n_classes)), {})
    report = check_parity(model, pipe, X_hold.reset_index(drop=True), data.schema, data.task, 1e-5, 0)
    assert report["passed"] and report["label_mismatches"] == 0
    assert log_loss(y_hold, pipe.predict_proba(X_hold)) < log_loss(y_hold, pipe.inner.predict_proba(X_hold))


def test_under_log_loss_calibration_never_sharpens_past_the_floor():
    """Near-separable OOF predictions (every row right, confidently): sharpening wins on them, which under
    the log loss metric undoes the probability floor chosen before calibration (a temperature of 0.05 won on
    penguins' OOF rows and one confident miss then cost 1.26 holdout log loss). With sharpen=False the
    temperature stays >= 1, a sigmoid slope above 1 becomes no calibration, and isotonic is not offered."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    p = np.full((300, 3), 0.05)
    p[np.arange(300), y] = 0.9
    folds = [np.arange(i, 300, 5) for i in range(5)]
    sharp = choose("auto", y, p, folds)
    assert sharp.calibrator.method == "temperature" and sharp.calibrator.a > 1.0  # T < 1: sharper
    safe = choose("auto", y, p, folds, sharpen=False)
    assert safe.calibrator.method == "none" or safe.calibrator.a <= 1.0 + 1e-9
    yb = (y == 0).astype(int)
    pb = np.c_[1 - np.where(yb == 1, 0.8, 0.2), np.where(yb == 1, 0.8, 0.2)]
    assert Calibrator.fit("sigmoid", yb, pb).a > 1.0
    assert Calibrator.fit("sigmoid", yb, pb, sharpen=False).method == "none"
    assert "isotonic" not in choose("auto", yb, pb, folds, sharpen=False).oof_log_loss


def test_time_ordered_folds_calibrate_each_fold_on_earlier_rows_only():
    """data.time_column: the candidates are scored with calibrators fitted on earlier folds only, so a fold
    with no earlier rows keeps its raw probabilities and fold 2's calibrator saw folds 0-1 and nothing later."""
    rng = np.random.default_rng(0)
    n = 600
    y = rng.integers(0, 2, n)
    p1 = np.clip(np.where(y == 1, 0.9, 0.1) + rng.normal(scale=0.2, size=n), 0.01, 0.99)  # overconfident
    oof = np.stack([1 - p1, p1], axis=1)
    folds = [np.arange(i * 150, (i + 1) * 150) for i in range(4)]
    a = choose("sigmoid", y, oof, folds, past_only=True)
    assert a.calibrator.method == "sigmoid"
    np.testing.assert_allclose(a.calibrated_oof[folds[0]], oof[folds[0]].astype(np.float32))
    past = np.arange(300)
    np.testing.assert_allclose(a.calibrated_oof[folds[2]], Calibrator.fit("sigmoid", y[past], oof[past])(oof[folds[2]]))
    c = choose("sigmoid", y, oof, folds)  # without past_only fold 2's calibrator also sees fold 3
    assert not np.allclose(a.calibrated_oof[folds[2]], c.calibrated_oof[folds[2]])
