"""Difficulty-normalised conformal intervals (task.interval_scale): on heteroscedastic data they keep the
coverage and are narrower on average than the constant width; on homoscedastic data the chooser keeps the
constant width or is no worse; the difficulty model's nodes sit in the same graph, parity-checked."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl.data.roles import infer_schema, to_model_frame
from automl.data.split import cv_folds
from automl.evaluation.conformal import Conformal, choose_scale, evaluate
from automl.evaluation.metrics import get_metric
from automl.export.contract import metadata
from automl.export.onnx import export_onnx
from automl.export.uncertainty import add_conformal, check_conformal_parity, graph_output
from automl.search import objective as obj
from automl.stages.difficulty import Residuals, fit_intervals

HGB = {"learning_rate": 0.1, "max_leaf_nodes": 15, "min_samples_leaf": 20, "max_iter": 60}
PRE = {"native_nan": True, "cat_encoding": "ordinal", "rare_min_frequency": 0.0}


def frame(n: int, hetero: bool, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x0, x1 = rng.uniform(-2, 2, n), rng.normal(size=n)
    shop = rng.choice(["a", "b", "c"], n)
    noise = (0.1 + 1.5 * np.abs(x0)) if hetero else np.ones(n)
    return pd.DataFrame({"x0": x0, "x1": x1, "shop": shop,
                         "y": 2 * x0 + (shop == "b") + noise * rng.normal(size=n)})


def run(df: pd.DataFrame, setting: str, coverage: float = 0.9) -> dict:
    schema = infer_schema(df, "y", [], [])
    X_all, y_all = to_model_frame(df, schema), df["y"].to_numpy(dtype=float)
    n_fit = int(0.6 * len(df))
    X, y = X_all.iloc[:n_fit].reset_index(drop=True), y_all[:n_fit]
    data = obj.SearchData(X=X, y=y, folds=cv_folds(y, "regression", 5, 0), schema=schema, missing_numeric=[],
                          task="regression", metric=get_metric("rmse"), n_classes=0, seed=0,
                          families=["hist_gradient_boosting"], n_jobs=1, imbalance=False)
    cand = obj.Candidate("hist_gradient_boosting", dict(HGB), dict(PRE))
    oof = obj.cross_validate(None, data, cand)["oof"][data.scored].astype(np.float64)
    res = Residuals(X.iloc[data.scored].reset_index(drop=True), data.oof_y, oof,
                    [np.searchsorted(data.scored, va) for _, va in data.folds])
    conf, difficulty = fit_intervals(data, res, coverage, setting)
    constant = Conformal.fit("regression", data.oof_y, oof, coverage)
    pipe = obj.build(data, cand).fit(X, y)
    base = export_onnx(pipe, schema, "regression", None, metadata(schema, "regression", "y", "rmse", None, "test"))
    graph = export_onnx(difficulty, schema, "regression", None, {}) if difficulty is not None else None
    model = add_conformal(base, conf, graph)
    X_hold, y_hold = X_all.iloc[n_fit:].reset_index(drop=True), y_all[n_fit:]
    parity = check_conformal_parity(model, pipe, X_hold, schema, conf, 1e-5, len(y), difficulty)
    shipped = evaluate(conf, y_hold, np.asarray(graph_output(model, X_hold, schema, len(y))["interval"]))
    const = evaluate(constant, y_hold, constant.interval(np.asarray(pipe.predict(X_hold))))
    return {"conf": conf, "parity": parity, "shipped": shipped, "constant": const, "model": model,
            "X_hold": X_hold, "schema": schema, "fit_rows": len(y)}


def test_heteroscedastic_data_get_narrower_intervals_at_the_same_coverage():
    r = run(frame(2500, hetero=True), "auto")
    assert r["conf"].scale == "normalised", r["conf"].to_json()
    assert r["parity"]["passed"] and r["parity"]["scale"] == "normalised"
    assert abs(r["shipped"]["coverage"] - 0.9) < 0.04, r["shipped"]  # 1000 held-out rows: ~4 standard errors
    assert r["shipped"]["mean_width"] < 0.92 * r["constant"]["mean_width"], (r["shipped"], r["constant"])
    # one graph: the difficulty model's nodes read the same raw inputs as the model
    names = [n.name for n in r["model"].graph.node]
    assert any(n.startswith("difficulty_") for n in names) and [i.name for i in r["model"].graph.input] == [
        "x0", "x1", "shop"]


def test_automl_predict_writes_the_normalised_interval(tmp_path):
    """`automl predict` on the one graph (model + difficulty nodes) writes `lower` / `upper` as onnxruntime
    gives them, widths varying by row."""
    from tests.cli_runner import run_cli

    df = frame(1500, hetero=True)
    r = run(df, "normalised")
    (tmp_path / "model.onnx").write_bytes(r["model"].SerializeToString())
    rows = df.iloc[900:].drop(columns=["y"])
    rows.to_csv(tmp_path / "rows.csv", index=False)
    p = run_cli("predict", "--model", str(tmp_path / "model.onnx"), "--data", str(tmp_path / "rows.csv"),
                "--out", str(tmp_path / "pred.csv"), timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    out = pd.read_csv(tmp_path / "pred.csv")
    ref = np.asarray(graph_output(r["model"], r["X_hold"], r["schema"], r["fit_rows"])["interval"])
    np.testing.assert_allclose(out[["lower", "upper"]].to_numpy(), ref, rtol=1e-5)
    assert (out["upper"] - out["lower"]).std() > 0.1


def test_homoscedastic_data_keep_the_constant_width_or_lose_nothing():
    r = run(frame(2500, hetero=False), "auto")
    assert r["parity"]["passed"]
    assert abs(r["shipped"]["coverage"] - 0.9) < 0.04, r["shipped"]
    assert r["shipped"]["mean_width"] <= 1.03 * r["constant"]["mean_width"], (r["conf"].to_json(), r["shipped"])


def test_chooser_uses_oof_rows_only_and_respects_the_setting():
    rng = np.random.default_rng(1)
    y, pred = rng.normal(size=400), np.zeros(400)
    sigma = np.abs(y) + 0.01  # a perfect difficulty: normalised wins
    assert choose_scale(y, pred, sigma, 0.9).scale == "normalised"
    assert choose_scale(y, pred, sigma, 0.9, "constant").scale == "constant"
    flat = np.ones(400)  # no information: the widths tie, constant kept
    assert choose_scale(y, pred, flat, 0.9).scale == "constant"
    assert choose_scale(y, pred, flat, 0.9, "normalised").scale == "normalised"
    nan = np.full(400, np.nan)  # no honest sigma anywhere (time order, one fold): constant
    assert choose_scale(y, pred, nan, 0.9).scale == "constant"


@pytest.mark.parametrize("scale", ["constant", "normalised"])
def test_interval_matches_the_graph_rule_in_float32(scale):
    conf = Conformal("regression", 0.9, (1.7,), scale=scale, sigma_floor=0.2)
    pred, sigma = np.array([1.0, -2.0, 3.5]), np.array([0.1, 1.0, 2.0])
    iv = conf.interval(pred, sigma if scale == "normalised" else None)
    half = np.float32(1.7) * (np.maximum(sigma.astype(np.float32), np.float32(0.2)) if scale == "normalised"
                              else np.float32(1.0))
    p32 = pred.astype(np.float32)
    np.testing.assert_array_equal(iv, np.stack([p32 - half.astype(np.float32), p32 + half.astype(np.float32)], 1))


def test_time_ordered_difficulty_uses_earlier_folds_only():
    """data.time_column: sigma(x) of a fold comes from a difficulty model fitted on earlier folds only (the
    first fold has none: NaN, left out of the normalised calibration)."""
    from automl.stages.difficulty import cross_fitted_sigma

    df = frame(800, hetero=True)
    schema = infer_schema(df, "y", [], [])
    X, y = to_model_frame(df, schema), df["y"].to_numpy(dtype=float)
    data = obj.SearchData(X=X, y=y, folds=cv_folds(y, "regression", 4, 0), schema=schema, missing_numeric=[],
                          task="regression", metric=get_metric("rmse"), n_classes=0, seed=0,
                          families=["hist_gradient_boosting"], n_jobs=1, imbalance=False)
    folds = [np.arange(i * 200, (i + 1) * 200) for i in range(4)]
    pred = 2 * df["x0"].to_numpy()
    a = cross_fitted_sigma(data, Residuals(X, y, pred, folds, past_only=True))
    assert np.isnan(a[folds[0]]).all() and np.isfinite(a[200:]).all()
    later = y.copy()
    later[600:] += 50.0  # the last fold's residuals change: earlier folds' sigma must not
    b = cross_fitted_sigma(data, Residuals(X, later, pred, folds, past_only=True))
    np.testing.assert_array_equal(a[:600], b[:600])
