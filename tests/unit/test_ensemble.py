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
    from automl.export.onnx import check_parity, export_onnx, metadata
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


def test_pool_adds_other_families_best_trials():
    """The candidate pool keeps the top of the leaderboard and adds each other family's best two, so
    a leaderboard topped by one family still offers the selection something to average with."""
    from types import SimpleNamespace

    from automl.run import _diverse_pool

    ranked = [SimpleNamespace(number=i, params={"family": "hgb"}) for i in range(30)]
    ranked += [SimpleNamespace(number=100 + i, params={"family": "mlp"}) for i in range(3)]
    ranked += [SimpleNamespace(number=200, params={"family": "linear"})]
    pool = _diverse_pool(ranked, top=12, per_family=2, cap=24)
    assert [t.number for t in pool] == [*range(12), 100, 101, 200]
    assert len(_diverse_pool(ranked, top=12, per_family=2, cap=13)) == 13



def test_selection_keeps_the_last_resorts_time_free(tmp_path, monkeypatch):
    """The final stage tries the ensemble only if it fits once the last resort's time is kept free, so
    the selection picks members within that same room: before, it chose in more room, and a 3-member
    ensemble (OOF 40.44 vs 40.51 RMSE) was skipped for the single ("expected 4.6s, 3.2s left")."""
    import time
    from types import SimpleNamespace

    from automl import run as run_mod
    from automl.search import budget as budget_mod
    from automl.search.budget import Budget

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    to_p = lambda s: np.c_[1 - 1 / (1 + np.exp(-s)), 1 / (1 + np.exp(-s))]  # noqa: E731
    (tmp_path / "oof").mkdir()
    trials = []
    for i in range(3):  # independent noise: averaging any two beats each alone
        np.save(tmp_path / "oof" / f"trial_{i}.npy", to_p(y + rng.normal(0, 1.0, 400)))
        trials.append(SimpleNamespace(number=i, params={"family": f"f{i}"}, user_attrs={}))
    monkeypatch.setattr(budget_mod, "final_cost", lambda *a, **k: 5.0)  # every member: 5 s to refit and export
    data = SimpleNamespace(y=y, folds=[None] * 3, n_classes=2, task="binary", tune_threshold=False)
    paths = SimpleNamespace(oof=tmp_path / "oof")
    budget = Budget(start=time.time(), time_s=30.0, reports_s=2.0)

    roomy = run_mod._select_ensemble(trials, data, get_metric("roc_auc"), paths, budget, keep_s=0.0)
    assert roomy is not None and len(roomy["members"]) == 3  # 15 s of 28 s
    tight = run_mod._select_ensemble(trials, data, get_metric("roc_auc"), paths, budget, keep_s=17.0)
    assert tight is not None and len(tight["members"]) == 2  # 10 s fit in 1.15 x 11 s, 15 s do not
    assert run_mod._select_ensemble(trials, data, get_metric("roc_auc"), paths, budget, keep_s=22.0) is None
