"""The level-2 stacker: its choice on nested OOF scores, and the stacked ensemble as one graph with parity."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl.data.roles import infer_schema, to_model_frame
from automl.data.split import cv_folds
from automl.evaluation.metrics import get_metric
from automl.export.contract import metadata
from automl.export.onnx import check_parity, export_onnx
from automl.search import objective as obj
from automl.stacking import StackedEnsemble, apply, fit_stacker, stack_features
from automl.stages.stack_choice import choose_stack, nested_parts


def _data(y: np.ndarray, task: str, metric: str, n_classes: int) -> obj.SearchData:
    df = pd.DataFrame({"x": np.arange(len(y), dtype=float), "y": y})
    schema = infer_schema(df, "y", [], [])
    return obj.SearchData(X=to_model_frame(df, schema), y=y, folds=cv_folds(y, task, 5, 0), schema=schema,
                          missing_numeric=[], task=task, metric=get_metric(metric), n_classes=n_classes, seed=0,
                          families=["linear"], n_jobs=1, imbalance=False)


def _overconfident(y: np.ndarray, rng: np.random.Generator, n_classes: int, acc: float) -> np.ndarray:
    """Probabilities that put 0.98 on a label right `acc` of the time: badly calibrated for log loss."""
    label = np.where(rng.random(len(y)) < acc, y, rng.integers(0, n_classes, len(y)))
    p = np.full((len(y), n_classes), 0.02 / (n_classes - 1))
    p[np.arange(len(y)), label] = 0.98
    return p


def test_the_stacker_ships_only_where_it_beats_caruana_on_nested_folds():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 1500)
    data = _data(y, "multiclass", "log_loss", 3)
    oofs = [_overconfident(y, rng, 3, 0.7)[data.scored], _overconfident(y, rng, 3, 0.6)[data.scored]]
    choice = choose_stack(oofs, [0.5, 0.5], data, time_limit_s=30)
    assert choice is not None  # the logistic stacker re-calibrates what averaging cannot
    assert choice.score < choice.caruana_score
    blend = 0.5 * oofs[0] + 0.5 * oofs[1]
    assert choice.score < data.metric(data.oof_y, blend, 3)
    # its nested predictions are predictions of rows it was not fitted on: fitted on all rows, it does better
    full = apply(choice.stacker, stack_features(oofs, "multiclass"))
    assert data.metric(data.oof_y, full, 3) <= choice.score

    # no stacking where random parts would leak (time order), and none without room
    assert choose_stack(oofs, [0.5, 0.5], data, time_limit_s=0) is None
    assert choose_stack(oofs, [0.5, 0.5], data, time_limit_s=1e-9) is None  # stops between its nested fits
    ordered = _data(y, "multiclass", "log_loss", 3)
    ordered.structure = type(ordered.structure)(order=np.arange(len(y)), groups=None)
    assert nested_parts(ordered) is None and choose_stack(oofs, [0.5, 0.5], ordered, 30) is None


def test_a_well_calibrated_average_keeps_the_caruana_weights():
    rng = np.random.default_rng(1)
    n = 1500
    signal = rng.normal(size=n)
    y = signal + 0.3 * rng.normal(size=n)
    data = _data(y, "regression", "rmse", 0)
    # two unbiased members with independent errors: the equal average is already the best linear blend
    oofs = [(signal + 0.5 * rng.normal(size=n))[data.scored], (signal + 0.5 * rng.normal(size=n))[data.scored]]
    choice = choose_stack(oofs, [0.5, 0.5], data, time_limit_s=30)
    if choice is not None:  # NNLS may still edge it; it must then win on the nested folds
        assert choice.score < choice.caruana_score
        assert np.all(choice.stacker.coef >= 0)


def _members(task: str):
    from sklearn.datasets import make_classification, make_regression

    from automl.estimators import REGISTRY
    from automl.preprocessing.pipeline import build_pipeline

    if task == "regression":
        X, y = make_regression(300, 5, noise=5.0, random_state=0)
    else:
        X, y = make_classification(300, 5, n_informative=4, n_redundant=0, random_state=0,
                                   n_classes=3 if task == "multiclass" else 2)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)])
    df["colour"] = np.where(X[:, 0] > 0, "red", "blue")
    df["y"] = y
    schema = infer_schema(df, "y", [], [])
    Xm = to_model_frame(df, schema)
    members = [
        build_pipeline(REGISTRY.get("linear").build({}, task=task, seed=0), {"scaler": "standard"}, schema, [], task),
        build_pipeline(REGISTRY.get("hist_gradient_boosting").build({"max_iter": 20}, task=task, seed=0),
                       {"native_nan": True}, schema, [], task),
    ]
    for m in members:
        m.fit(Xm, y)
    return members, Xm, y, schema


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_a_stacked_ensemble_exports_as_one_graph_with_parity(task):
    members, Xm, y, schema = _members(task)
    n_classes = 0 if task == "regression" else int(y.max()) + 1
    preds = [m.predict(Xm) if task == "regression" else m.predict_proba(Xm) for m in members]
    stacker = fit_stacker(stack_features(preds, task), y, task, n_classes, 1.0, 0)
    ens = StackedEnsemble(members, stacker, task, floor=0.01 if task != "regression" else 0.0)
    classes = None if task == "regression" else list(range(n_classes))
    model = export_onnx(ens, schema, task, classes, metadata(schema, task, "y", "rmse", classes, "t"))
    assert sum(n.op_type == "MatMul" and n.name == "stack_matmul" for n in model.graph.node) == 1
    report = check_parity(model, ens, Xm, schema, task, 1e-5, 0)
    assert report["passed"]
    if task != "regression":
        p = ens.predict_proba(Xm)
        assert np.allclose(p.sum(axis=1), 1) and p.min() >= 0.01 / n_classes - 1e-12


def test_the_final_refit_ships_a_stack_through_the_parity_gate():
    """refit_export with a stacker (as the final stage passes it): members refit on all rows, the stacker as
    fitted on their OOF predictions, one graph that passes the gate and scores the holdout as Python does."""
    from sklearn.datasets import make_classification

    from automl.stages.refit import Extras, refit_export

    X, y = make_classification(600, 6, n_informative=4, n_redundant=0, n_classes=3, random_state=1)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)])
    df["y"] = y
    schema = infer_schema(df, "y", [], [])
    Xm = to_model_frame(df, schema)
    X_fit, y_fit, X_hold, y_hold = Xm.iloc[:450].reset_index(drop=True), y[:450], Xm.iloc[450:], y[450:]
    data = obj.SearchData(X=X_fit, y=y_fit, folds=cv_folds(y_fit, "multiclass", 3, 0), schema=schema,
                          missing_numeric=[], task="multiclass", metric=get_metric("log_loss"), n_classes=3, seed=0,
                          families=["linear", "hist_gradient_boosting"], n_jobs=1, imbalance=False)
    cands = [obj.Candidate("linear", {}, {"scaler": "standard"}),
             obj.Candidate("hist_gradient_boosting", {"max_iter": 30}, {"native_nan": True})]
    oofs = [obj.cross_validate(None, data, c)["oof"][data.scored] for c in cands]
    stacker = fit_stacker(stack_features(oofs, "multiclass"), data.oof_y, "multiclass", 3, 1.0, 0)
    out = refit_export(None, data, [(c, 0.5) for c in cands], X_hold, y_hold, [0, 1, 2], {}, 1e-5, 200,
                       refit_full=True, extras=Extras(stacker=stacker))
    assert "model" in out and out["parity"]["passed"], out.get("parity_error")
    assert out["holdout_score_onnx"] == pytest.approx(out["holdout_score"], abs=1e-4)
    assert out["refit_full_rows"] == 600 and len(out["estimators"]) == 2
