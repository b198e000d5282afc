"""Imbalanced classification: samplers act inside the training folds only, class weights reach the
estimator, the decision threshold is tuned on OOF predictions and the graph's `label` applies it."""
from __future__ import annotations

import numpy as np
import onnx
import pandas as pd
import pytest

from automl.data.roles import infer_schema, to_model_frame
from automl.data.split import cv_folds
from automl.errors import ParityError
from automl.evaluation.metrics import get_metric, labels_from_proba, per_class_report
from automl.evaluation.threshold import tune
from automl.preprocessing.imbalance import (
    BalancedClassifier,
    _fold,
    _layout,
    _targets,
    _unfold,
    balanced_weights,
    supports_weights,
)
from automl.search import objective as obj


def _frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Two numeric columns (one with NaN), two categoricals, a ~12% positive target."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                       "c": rng.choice(list("pqrs"), n).astype(object), "d": rng.choice(list("xyz"), n).astype(object)})
    df.loc[::13, "b"] = np.nan
    df["y"] = ((df.a + 1.5 * (df.c == "p") + rng.normal(0, 0.5, n)) > 1.8).astype(int)
    return df


def _data(df: pd.DataFrame, metric: str = "f1", families: tuple[str, ...] = ("linear",), **kw) -> obj.SearchData:
    schema = infer_schema(df, "y", [], [])
    y = df["y"].to_numpy()
    return obj.SearchData(X=to_model_frame(df, schema), y=y, folds=cv_folds(y, "binary", 3, 0), schema=schema,
                          missing_numeric=["b"], task="binary", metric=get_metric(metric), n_classes=2, seed=0,
                          families=list(families), n_jobs=1, **kw)


PRE = {"native_nan": False, "num_impute": "median", "missing_indicator": True, "scaler": "standard"}


# --- resampling ------------------------------------------------------------------------------------
def test_targets_reach_the_ratio_and_never_move_a_class_the_other_way():
    y = np.r_[np.zeros(90), np.ones(10), np.full(30, 2)]
    assert _targets(y, 0.5, over=True) == {1.0: 45, 2.0: 45}
    assert _targets(y, 1.0, over=False) == {0.0: 10, 2.0: 10}
    assert _targets(y, 0.25, over=False) == {0.0: 40}  # class 2 (30) is already under 40


@pytest.mark.parametrize("encoding", ["onehot", "target", "ordinal"])
@pytest.mark.parametrize("sampler", ["smote", "adasyn", "smote_tomek", "smote_enn"])
def test_synthetic_rows_have_valid_categorical_values(encoding, sampler):
    """SMOTE-NC on folded one-hot blocks (and the ADASYN snap) gives synthetic rows only real levels:
    every one-hot block holds exactly one 1, every code / target-encoded / indicator value is a real one."""
    df = _frame()
    data = _data(df)
    pipe = obj.build(data, obj.Candidate("linear", {}, {**PRE, "cat_encoding": encoding},
                                         {"sampler": sampler, "ratio": 1.0, "k_neighbors": 5}))
    pre = pipe.named_steps["pre"].fit(data.X, data.y)
    X = pipe.named_steps["cast"].fit_transform(pre.transform(data.X))
    wrapper = pipe.named_steps["est"]
    Xr, yr = wrapper._resample(X, data.y)
    assert (yr == 1).sum() > (data.y == 1).sum()  # minority grew
    blocks, singles = _layout(pre, X.shape[1])
    assert blocks or singles
    for b in blocks:
        assert set(np.unique(Xr[:, b])) <= {0.0, 1.0}
        assert np.all(Xr[:, b].sum(axis=1) == 1)
    for j in singles:
        assert set(np.unique(Xr[:, j].astype(np.float32))) <= set(np.unique(X[:, j]))


def test_fold_unfold_round_trip():
    X = np.array([[0.5, 1, 0, 0, 3.0, 0, 1], [1.5, 0, 0, 1, 4.0, 1, 0]], dtype=np.float32)
    blocks, singles = [slice(1, 4), slice(5, 7)], [4]
    Z, cat = _fold(X, blocks, singles)
    assert Z.shape == (2, 4) and cat == [1, 2, 3]
    np.testing.assert_array_equal(_unfold(Z, 7, blocks), X)


def test_sampler_sees_only_the_training_rows_of_each_fold(monkeypatch):
    """The wrapper is fitted on each fold's training rows (and resamples those); validation rows are
    predicted as they are, never resampled."""
    df = _frame()
    data = _data(df)
    seen: list[tuple[int, int]] = []
    orig = BalancedClassifier.fit

    def spy(self, X, y):
        out = orig(self, X, y)
        seen.append((len(X), self.n_resampled_))
        return out

    monkeypatch.setattr(BalancedClassifier, "fit", spy)
    res = obj.cross_validate(None, data, obj.Candidate("linear", {}, {**PRE, "cat_encoding": "onehot"},
                                                       {"sampler": "smote", "ratio": 1.0, "k_neighbors": 5}))
    assert [n for n, _ in seen] == [len(tr) for tr, _ in data.folds]
    assert all(r > n for n, r in seen)
    assert res["oof"].shape == (len(df), 2)  # every row predicted once, from the fold that held it out


def test_native_nan_families_get_random_samplers_only():
    data = _data(_frame(), families=("hist_gradient_boosting",))
    ctx = obj.context_for(data, "hist_gradient_boosting")
    ctx["native_nan"] = True
    names = [p.name for p in data.spaces["imbalance"] if p.active(ctx)]
    assert "sampler" not in names and "k_neighbors" not in names
    choices = next(p.choices for p in data.spaces["imbalance"] if p.name == "sampler_native_nan")
    assert set(choices) == {"none", "random_over", "random_under", "balanced_bagging"}  # none needs neighbours
    # and such a trial runs with NaN in the matrix
    res = obj.cross_validate(None, data, obj.Candidate(
        "hist_gradient_boosting", {"max_iter": 20}, {"native_nan": True, "cat_encoding": "onehot"},
        {"sampler_native_nan": "random_over", "ratio": 1.0}))
    assert np.isfinite(res["mean"])


def test_baseline_and_regression_get_no_imbalance_choices():
    data = _data(_frame(), families=("baseline", "knn"))
    assert not [p for p in data.spaces["imbalance"] if p.active(obj.context_for(data, "baseline"))]
    knn = [p.name for p in data.spaces["imbalance"] if p.active(obj.context_for(data, "knn"))]
    assert "class_weight" not in knn  # KNN takes no weights
    off = _data(_frame(), imbalance=False)
    assert "imbalance" not in off.spaces


# --- class weights -----------------------------------------------------------------------------------
def test_class_weights_reach_the_estimator():
    from sklearn.linear_model import LogisticRegression
    from xgboost import XGBClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)).astype(np.float32)
    y = (X[:, 0] + rng.normal(0, 1, 200) > 1.5).astype(int)
    lr = BalancedClassifier(LogisticRegression(), class_weight="balanced").fit(X, y)
    assert lr.estimator_.class_weight == "balanced"
    assert supports_weights(XGBClassifier()) == "sample_weight"
    xgb = BalancedClassifier(XGBClassifier(n_estimators=10, n_jobs=1), class_weight="balanced").fit(X, y)
    ref = XGBClassifier(n_estimators=10, n_jobs=1).fit(X, y, sample_weight=balanced_weights(y))
    np.testing.assert_allclose(xgb.predict_proba(X), ref.predict_proba(X))
    w = balanced_weights(y)
    assert w[y == 1].sum() == pytest.approx(w[y == 0].sum())


# --- threshold tuning --------------------------------------------------------------------------------
@pytest.mark.parametrize("name,minimum", [("f1", None), ("balanced_accuracy", None), ("accuracy", None),
                                          ("precision_at_recall", 0.8), ("recall_at_precision", 0.6)])
def test_tuned_threshold_is_the_best_cut(name, minimum):
    rng = np.random.default_rng(1)
    y = (rng.random(400) < 0.15).astype(int)
    p1 = np.clip(0.35 * y + 0.65 * rng.random(400), 0, 1)
    m = get_metric(name, minimum)
    t, score = tune(m, y, p1)
    proba = np.c_[1 - p1, p1]
    assert m(y, proba, 2, t) == pytest.approx(score)
    brute = max(m(y, proba, 2, float(c)) for c in np.unique(p1.astype(np.float32)))
    assert score == pytest.approx(brute)
    if name == "precision_at_recall":
        assert (labels_from_proba(proba, t)[y == 1]).mean() >= 0.8


def test_f1_with_threshold_beats_argmax_on_imbalanced_oof():
    data = _data(_frame(n=400, seed=3))
    res = obj.cross_validate(None, data, obj.Candidate("linear", {}, {**PRE, "cat_encoding": "onehot"}, {}))
    assert res["threshold"] is not None
    argmax_f1 = get_metric("f1")(data.y, res["oof"].astype(np.float64), 2)
    assert res["mean"] > argmax_f1
    off = _data(_frame(n=400, seed=3), tune_threshold=False)
    res_off = obj.cross_validate(None, off, obj.Candidate("linear", {}, {**PRE, "cat_encoding": "onehot"}, {}))
    assert res_off["threshold"] is None


# --- the threshold inside the graph ----------------------------------------------------------------
def _fitted(df: pd.DataFrame):
    data = _data(df)
    cand = obj.Candidate("random_forest", {"n_estimators": 20}, {"native_nan": False, "cat_encoding": "target"},
                         {"sampler": "smote", "ratio": 0.8, "k_neighbors": 5, "class_weight": "balanced"})
    return data, obj.build(data, cand).fit(data.X, data.y)


def test_label_output_applies_the_threshold_and_probabilities_stay():
    from automl.export.contract import feeds_from_frame
    from automl.export.onnx import check_parity, export_onnx, session

    df = _frame()
    data, pipe = _fitted(df)
    t = 0.3
    with_t = export_onnx(pipe, data.schema, "binary", ["no", "yes"], {}, threshold=t)
    without = export_onnx(pipe, data.schema, "binary", ["no", "yes"], {})
    assert not any(isinstance(n, BalancedClassifier) for n in [with_t])  # sanity: a graph, not a wrapper
    assert {p.key: p.value for p in with_t.metadata_props}["decision_threshold"] == "0.30000001192092896"
    feeds = feeds_from_frame(data.X, data.schema.to_json())
    lab, prob = session(with_t.SerializeToString()).run(None, feeds)
    lab0, prob0 = session(without.SerializeToString()).run(None, feeds)
    np.testing.assert_array_equal(prob, prob0)
    np.testing.assert_allclose(prob, pipe.predict_proba(data.X), atol=1e-5)
    expect = np.where(prob[:, 1] >= np.float32(t), "yes", "no")
    assert list(lab) == list(expect)
    assert (lab != lab0).any()  # the threshold changed some labels
    rep = check_parity(with_t, pipe, data.X, data.schema, "binary", 1e-5, 0, threshold=t)
    assert rep["passed"] and rep["label_mismatches"] == 0 and rep["labels_checked"] > 0
    assert rep["decision_threshold"] == pytest.approx(t)
    # the gate reads the graph's label output: a graph whose threshold differs from the Python rule fails
    with pytest.raises(ParityError):
        check_parity(without, pipe, data.X, data.schema, "binary", 1e-5, 0, threshold=t)


def test_exported_graph_holds_no_sampler():
    from automl.export.onnx import export_onnx

    data, pipe = _fitted(_frame())
    model = export_onnx(pipe, data.schema, "binary", [0, 1], {}, threshold=0.4)
    onnx.checker.check_model(model)
    ops = {n.op_type for n in model.graph.node}
    assert "TreeEnsembleClassifier" in ops or "TreeEnsemble" in ops
    assert "GreaterOrEqual" in ops and "ArgMax" not in ops


def test_per_class_report_uses_the_threshold():
    y = np.array([0, 0, 0, 1, 1])
    p = np.array([[0.9, 0.1], [0.7, 0.3], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
    argmax = per_class_report(y, p, ["neg", "pos"])
    tuned = per_class_report(y, p, ["neg", "pos"], threshold=0.35)
    assert argmax[1]["recall"] == 0.5 and tuned[1]["recall"] == 1.0
    assert tuned[1]["predicted"] == 3 and tuned[0]["class"] == "neg"


def test_model_card_reports_threshold_and_per_class_lines():
    from automl.reporting.model_card import _class_lines

    lines = "\n".join(_class_lines({"decision_threshold": 0.25, "holdout_per_class": [
        {"class": "0", "precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 90, "predicted": 80},
        {"class": "1", "precision": 0.3, "recall": 0.6, "f1": 0.4, "support": 10, "predicted": 20}]}, "binary"))
    assert "Decision threshold **0.25**" in lines and "probabilities[:, 1] >= 0.25" in lines
    assert "| 1 | 0.3 | 0.6 | 0.4 | 10 | 20 |" in lines
    assert "most probable class" in "\n".join(_class_lines({}, "multiclass"))


def test_multiclass_resampling_exports_with_parity():
    """Three classes, SMOTE-NC on one-hot categoricals, weights: the graph is the inner model, argmax labels."""
    from automl.export.onnx import check_parity, export_onnx

    rng = np.random.default_rng(2)
    n = 300
    df = pd.DataFrame({"a": rng.normal(size=n), "c": rng.choice(list("pqr"), n).astype(object)})
    df["y"] = np.select([df.a < -1.0, df.a > 1.2], ["rare1", "rare2"], "common")
    schema = infer_schema(df, "y", [], [])
    y = pd.factorize(df["y"], sort=True)[0]
    data = obj.SearchData(X=to_model_frame(df, schema), y=y, folds=cv_folds(y, "multiclass", 3, 0), schema=schema,
                          missing_numeric=[], task="multiclass", metric=get_metric("balanced_accuracy"), n_classes=3,
                          seed=0, families=["xgboost"], n_jobs=1)
    cand = obj.Candidate("xgboost", {"n_estimators": 20}, {"native_nan": False, "cat_encoding": "onehot"},
                         {"sampler": "smote", "ratio": 1.0, "k_neighbors": 5, "class_weight": "balanced"})
    res = obj.cross_validate(None, data, cand)
    assert res["threshold"] is None  # thresholds are for binary tasks
    pipe = obj.build(data, cand).fit(data.X, data.y)
    assert pipe.named_steps["est"].n_resampled_ > len(y)
    model = export_onnx(pipe, schema, "multiclass", ["common", "rare1", "rare2"], {})
    rep = check_parity(model, pipe, data.X, schema, "multiclass", 1e-5, 0)
    assert rep["passed"] and rep["label_mismatches"] == 0


def test_auto_searches_imbalance_for_label_metrics_and_skewed_targets_not_log_loss():
    import numpy as np

    from automl.evaluation.metrics import get_metric
    from automl.preprocessing.imbalance import search_imbalance

    even, skewed = np.array([0, 1] * 50), np.array([0] * 90 + [1] * 10)
    assert not search_imbalance("auto", "binary", get_metric("roc_auc"), even)
    assert search_imbalance("auto", "binary", get_metric("roc_auc"), skewed)
    assert search_imbalance("auto", "binary", get_metric("f1"), even)  # label metric: the decision rule
    assert not search_imbalance("auto", "multiclass", get_metric("log_loss"), np.array([0] * 90 + [1] * 5 + [2] * 5))
    assert search_imbalance("True", "binary", get_metric("log_loss"), even)  # OmegaConf turns true into 'True'
    assert not search_imbalance("False", "binary", get_metric("f1"), skewed)
    assert not search_imbalance("true", "regression", get_metric("rmse"), np.arange(10.0))



# --- balanced bagging (EasyEnsemble) ------------------------------------------------------------------
def test_balanced_bagging_averages_bags_each_on_its_own_under_sample():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 3)).astype(np.float32)
    y = (X[:, 0] + rng.normal(0, 1, 300) > 2.0).astype(int)
    n_min = int(y.sum())
    bag = BalancedClassifier(LogisticRegression(), sampler="balanced_bagging", ratio=1.0, n_bags=4).fit(X, y)
    assert len(bag.estimators_) == 4 and bag.n_resampled_ == 4 * 2 * n_min  # every bag: all minority + as many others
    coefs = np.array([e.coef_.ravel() for e in bag.estimators_])
    assert len({tuple(np.round(c, 6)) for c in coefs}) == 4  # different majority rows per bag
    mean = np.mean([e.predict_proba(X) for e in bag.estimators_], axis=0)
    np.testing.assert_allclose(bag.predict_proba(X), mean, rtol=1e-6)  # the bags answer in float32
    np.testing.assert_array_equal(bag.predict(X), bag.classes_[np.argmax(mean, axis=1)])
    # ratio 0.5: each bag keeps twice as many majority rows as minority rows
    half = BalancedClassifier(LogisticRegression(), sampler="balanced_bagging", ratio=0.5, n_bags=2).fit(X, y)
    assert half.n_resampled_ == 2 * 3 * n_min
    # one plain fit is unchanged by the bagging code path
    one = BalancedClassifier(LogisticRegression(), sampler="random_under", ratio=1.0).fit(X, y)
    assert len(one.estimators_) == 1 and one.estimator_ is one.estimators_[0]


def test_balanced_bagging_exports_every_bag_with_parity():
    """A native-NaN family with balanced bagging, alone and inside a weighted ensemble with a plain
    pipeline: the graph averages every bag behind the shared preprocessing, and parity holds."""
    from automl.ensemble import WeightedEnsemble
    from automl.export.onnx import check_parity, export_onnx

    df = _frame()
    data = _data(df, families=("hist_gradient_boosting",))
    bagged = obj.build(data, obj.Candidate("hist_gradient_boosting", {"max_iter": 15},
                                           {"native_nan": True, "cat_encoding": "onehot"},
                                           {"sampler_native_nan": "balanced_bagging", "ratio": 1.0, "n_bags": 3}))
    bagged.fit(data.X, data.y)
    model = export_onnx(bagged, data.schema, "binary", [0, 1], {})
    trees = [n for n in model.graph.node if n.op_type.startswith("TreeEnsemble")]
    assert len(trees) == 3
    rep = check_parity(model, bagged, data.X, data.schema, "binary", 1e-5, 0)
    assert rep["passed"] and rep["label_mismatches"] == 0
    plain = obj.build(data, obj.Candidate("linear", {}, {**PRE, "cat_encoding": "onehot"}, {})).fit(data.X, data.y)
    ens = WeightedEnsemble([bagged, plain], [0.75, 0.25], "binary")
    model = export_onnx(ens, data.schema, "binary", [0, 1], {}, threshold=0.3)
    from onnx import numpy_helper

    weights = sorted(float(numpy_helper.to_array(t)) for t in model.graph.initializer if t.name.startswith("ens_w"))
    np.testing.assert_allclose(weights, [0.25, 0.25, 0.25, 0.25], rtol=1e-6)  # three bags x 0.75/3, the plain 0.25
    rep = check_parity(model, ens, data.X, data.schema, "binary", 1e-5, 0, threshold=0.3)
    assert rep["passed"] and rep["label_mismatches"] == 0


def test_balanced_bagging_cross_validates_inside_the_folds(monkeypatch):
    df = _frame()
    data = _data(df, metric="average_precision", families=("random_forest",))
    seen: list[int] = []
    orig = BalancedClassifier._fit_one

    def spy(self, X, y, bag=0):
        seen.append(len(X))
        return orig(self, X, y, bag)

    monkeypatch.setattr(BalancedClassifier, "_fit_one", spy)
    res = obj.cross_validate(None, data, obj.Candidate("random_forest", {"n_estimators": 10},
                                                       {**PRE, "cat_encoding": "onehot"},
                                                       {"sampler": "balanced_bagging", "ratio": 1.0, "n_bags": 3}))
    assert seen == [len(tr) for tr, _ in data.folds for _ in range(3)]  # every bag of every fold: training rows only
    assert np.isfinite(res["mean"]) and 0 <= res["mean"] <= 1
    assert res["oof"].shape == (len(df), 2) and np.all(res["oof"][:, 1] >= 0)


# --- warm start: the unweighted defaults first, then imbalance variants --------------------------------
def test_warm_start_runs_the_unweighted_defaults_first_then_imbalance_variants():
    from automl.search.study import warm_start_queue

    fams = ("linear", "knn", "hist_gradient_boosting", "catboost")
    on = warm_start_queue(_data(_frame(), metric="average_precision", families=fams))
    off = warm_start_queue(_data(_frame(), metric="average_precision", families=fams, imbalance=False))
    n = len(fams)
    assert [o for _, o in on[:n]] == ["default"] * n
    # the defaults are the very trials of a run with search.imbalance=false (no sampler, no weights)
    assert [{k: v for k, v in p.items() if not k.startswith("imb.")} for p, _ in on[:n]] == [p for p, _ in off[:n]]
    assert all(p.get("imb.class_weight", "none") == "none" and p.get("imb.sampler", p.get("imb.sampler_native_nan"))
               == "none" for p, _ in on[:n])
    assert "imbalance" not in {o for _, o in off}
    # the imbalance variants come before the portfolio on an imbalanced target scored by a label metric,
    # after it otherwise (a ranking metric does not depend on the class prior)
    rare = _frame()
    rare["y"] = 0
    rare.loc[::25, "y"] = 1  # 4% positive
    for df, metric, first in ((_frame(), "f1", False), (rare, "f1", True), (rare, "average_precision", False),
                              (rare, "roc_auc", False)):
        data = _data(df, metric=metric, families=fams)
        assert obj.imbalanced(data) is (df is rare)
        origins = [o for _, o in warm_start_queue(data)[n:]]
        assert set(origins) == {"imbalance", "portfolio"}
        last_var = len(origins) - 1 - origins[::-1].index("imbalance")
        assert (last_var < origins.index("portfolio")) is first, (metric, origins)
    variants = [p for p, o in on if o == "imbalance"]
    # per family: class weights first (no extra cost), then balanced bagging; knn takes no weights
    knn = [p for p in variants if p["family"] == "knn"]
    assert [p.get("imb.sampler") for p in knn] == ["balanced_bagging"]
    lin = [p for p in variants if p["family"] == "linear"]
    assert [(p.get("imb.class_weight"), p.get("imb.sampler")) for p in lin] == [("balanced", "none"),
                                                                                ("none", "balanced_bagging")]
    hgb = [p for p in variants if p["family"] == "hist_gradient_boosting"]
    assert hgb[-1]["imb.sampler_native_nan"] == "balanced_bagging" and hgb[-1]["imb.n_bags"] == 10


def test_imbalanced_flag_and_variants_respect_a_custom_space(tmp_path):
    import shutil

    from automl.search.space import DEFAULT_SPACE_DIR

    rng = np.random.default_rng(0)
    df = _frame(n=400)
    df["y"] = (rng.random(400) < 0.05).astype(int)
    df.loc[:3, "y"] = 1
    assert obj.imbalanced(_data(df))
    df["y"] = (rng.random(400) < 0.4).astype(int)
    assert not obj.imbalanced(_data(df))
    spaces = tmp_path / "spaces"
    shutil.copytree(DEFAULT_SPACE_DIR, spaces)
    (spaces / "imbalance.yaml").write_text(
        "sampler: {type: categorical, choices: [none, smote], when: {resampling: true, native_nan: false}}\n"
        "class_weight: {type: categorical, choices: [none, balanced], when: {class_weights: true}}\n")
    data = _data(_frame(), families=("linear", "knn"), space_dir=str(spaces))
    assert [p["imb.class_weight"] for p in obj.imbalance_variants(data, "linear")] == ["balanced"]
    assert obj.imbalance_variants(data, "knn") == []  # no weights, and this space offers no bagging
