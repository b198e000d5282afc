"""Greedy ensemble selection, the probability floor and the exported ensemble graph."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl.ensemble import WeightedEnsemble, choose_floor, greedy_select
from automl.evaluation.metrics import get_metric


def _auc(y, p):
    return get_metric("roc_auc")(y, p, 2)


def test_greedy_select_combines_complementary_models():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    signal_a = y + rng.normal(0, 1.0, 400)
    signal_b = y + rng.normal(0, 1.0, 400)  # independent noise: the average beats either alone
    to_p = lambda s: np.c_[1 - 1 / (1 + np.exp(-s)), 1 / (1 + np.exp(-s))]  # noqa: E731
    oofs = [to_p(signal_a), to_p(signal_b), to_p(rng.normal(size=400))]
    sel = greedy_select(oofs, y, _auc, greater_is_better=True)
    assert set(sel.members) == {0, 1}
    assert sel.score > max(_auc(y, oofs[0]), _auc(y, oofs[1]))
    assert abs(sum(sel.weights) - 1) < 1e-9


def test_greedy_select_respects_refit_cost():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    oofs = [np.c_[1 - p, p] for p in (np.clip(y + rng.normal(0, s, 300), 0, 1) for s in (0.8, 0.9, 0.9))]
    sel = greedy_select(oofs, y, _auc, True, costs=[1.0, 100.0, 100.0], max_cost=10.0)
    assert sel.members == [0]  # the other members would not fit in the time left


def test_floor_bounds_a_confident_miss():
    y = np.array([0, 1, 1, 0])
    oof = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    ll = get_metric("log_loss")
    eps = choose_floor(oof, y, lambda yy, p: ll(yy, p, 2))
    assert eps == pytest.approx(0.001)  # perfect OOF: the smallest floor
    miss = np.array([[0.0, 1.0]])
    assert ll(np.array([0]), (1 - eps) * miss + eps / 2, 2) < 8.0  # instead of ~34.5 unfloored


@pytest.mark.onnx
def test_weighted_ensemble_exports_as_one_graph_with_parity():
    from sklearn.datasets import make_classification

    from automl.data.roles import infer_schema, to_model_frame
    from automl.estimators import REGISTRY
    from automl.export.contract import metadata
    from automl.export.onnx import check_parity, export_onnx
    from automl.preprocessing.pipeline import build_pipeline

    X, y = make_classification(200, 5, random_state=0)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)])
    df["colour"] = np.where(X[:, 0] > 0, "red", "blue")
    df["y"] = y
    schema = infer_schema(df, "y", [], [])
    Xm = to_model_frame(df, schema)
    members = [
        build_pipeline(REGISTRY.get("linear").build({}, task="binary", seed=0), {"scaler": "standard"}, schema, []),
        build_pipeline(REGISTRY.get("hist_gradient_boosting").build({"max_iter": 20}, task="binary", seed=0),
                       {"native_nan": True}, schema, []),
    ]
    for m in members:
        m.fit(Xm, y)
    ens = WeightedEnsemble(members, [0.7, 0.3], "binary", floor=0.01)
    model = export_onnx(ens, schema, "binary", [0, 1], metadata(schema, "binary", "y", "roc_auc", [0, 1], "t"))
    assert [o.name for o in model.graph.output] == ["label", "probabilities"]
    report = check_parity(model, ens, Xm, schema, "binary", 1e-5, 0)
    assert report["passed"] and report["max_diff"] < 1e-5
    assert ens.predict_proba(Xm).min() >= 0.01 / 2 - 1e-12


def test_selection_starts_from_the_ranked_best_not_from_a_trial_lucky_on_these_rows():
    """beats_best_single starts from the pool's first trial (the ranking weighs a fresh split these OOF
    predictions do not show): a trial lucky on these rows may join the ensemble, but the ranked best is in it."""
    from automl.ensemble import beats_best_single

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 800)
    ranked_best = np.clip(0.5 + 0.25 * (2 * y - 1) + 0.3 * rng.normal(size=800), 0.01, 0.99)
    lucky = np.clip(0.5 + 0.30 * (2 * y - 1) + 0.3 * rng.normal(size=800), 0.01, 0.99)
    oofs = [np.column_stack([1 - p, p]) for p in (ranked_best, lucky)]
    sel, best_single, _ = beats_best_single(oofs, y, _auc, True, [1.0, 1.0], 10.0)
    assert best_single == _auc(y, oofs[0])
    anchored = dict(zip(sel.members, sel.weights, strict=True))
    unanchored_sel = greedy_select(oofs, y, _auc, True)
    unanchored = dict(zip(unanchored_sel.members, unanchored_sel.weights, strict=True))
    assert sel.history[0] == best_single and anchored.get(0, 0.0) > 0  # the ranked best starts it and stays in it
    assert unanchored_sel.history[0] == _auc(y, oofs[1]) > best_single  # unanchored, the lucky one starts it
    assert set(unanchored) <= {0, 1}
