"""How trials are scored (search.validation) and robust selection (search.rescore).

Data too large for k-fold CV in the budget is scored on one inner split (FLAML's rule), which keeps the
split structure; on small data the best trials are scored again on fresh folds and re-ranked by the mean
of both estimates."""
from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest

from automl.config.schema import RunConfig
from automl.data.split import Structure, cv_folds, inner_share, scored_rows
from automl.evaluation.metrics import get_metric
from automl.io import oof_file
from automl.search.budget import SOLO_RATIO, Budget, final_cost, rescore_s, reserve, trial_final_cost
from automl.search.ensemble_room import ensemble_pays
from automl.search.objective import candidate_from, trained_rounds
from automl.stages.prepare import validation_for
from automl.stages.rescore import reorder


def _cfg(time_s: float = 60.0, **search: object) -> RunConfig:
    cfg = RunConfig()
    cfg.budget.time_s = time_s
    for k, v in search.items():
        setattr(cfg.search, k, v)
    return cfg


@pytest.mark.parametrize(("rows", "cols", "time_s", "folds"), [
    (20186, 14, 60, 1),  # 16k search rows x 14 columns: 250k cells over the 167k a minute allows
    (21638, 3, 60, 3),  # the same rows with 3 columns fit 3-fold CV
    (20186, 14, 600, 3),  # ten minutes allow k-fold CV of the same data
    (3470, 100, 60, 5),  # wide but small: never one split under 4,000 search rows
    (150_000, 2, 3600, 1),  # 100,000 rows or more: one split whatever the budget
])
def test_auto_chooses_one_inner_split_only_where_k_fold_cv_cannot_fit_the_budget(rows, cols, time_s, folds):
    n, why = validation_for(_cfg(time_s), rows, cols)
    assert n == folds, why
    assert ("one inner split" in why) == (folds == 1)


def test_explicit_settings_win_over_auto():
    assert validation_for(_cfg(validation="cv"), 20186, 14)[0] == 3
    assert validation_for(_cfg(cv_folds=4), 20186, 14)[0] == 4
    assert validation_for(_cfg(validation="holdout"), 500, 3)[0] == 1


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_the_inner_split_is_one_disjoint_fold_of_the_documented_share(task):
    rng = np.random.default_rng(0)
    n = 16000
    y = rng.integers(0, 2, n) if task == "binary" else rng.normal(size=n)
    (tr, va), = cv_folds(y, task, 1, 0)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == n
    assert abs(len(va) / n - inner_share(n)) < 0.01
    # AutoGluon's tuning share: 0.2 up to 25,000 rows, then 2 x 2500 / n (at least 0.02)
    assert [inner_share(m) for m in (1000, 16000, 50000, 200000, 10**7)] == pytest.approx([0.2, 0.2, 0.1, 0.025, 0.02])
    assert np.array_equal(scored_rows([(tr, va)], n), np.sort(va))
    if task == "binary":  # stratified
        assert abs(y[va].mean() - y.mean()) < 0.01


def test_the_inner_split_keeps_groups_whole_and_looks_forward_in_time():
    rng = np.random.default_rng(1)
    n = 6000
    groups = rng.integers(0, 300, n)
    y = rng.normal(size=n)
    (tr, va), = cv_folds(y, "regression", 1, 0, Structure(groups=groups))
    assert not set(groups[tr]) & set(groups[va])
    order = rng.permutation(n).astype(float)
    (tr, va), = cv_folds(y, "regression", 1, 0, Structure(order=order))
    assert order[tr].max() < order[va].min()
    assert abs(len(va) / n - inner_share(n)) < 0.05


def test_one_inner_split_prices_the_refit_on_more_rows_than_it_trained_on():
    attrs = {"fold_fit_s": 1.0, "export_s": 0.0, "seconds": 1.0}
    one = final_cost(attrs, 1, refit_full=False)
    assert one == pytest.approx(1.2 * 1.25 + 0.5)  # trained on >= 80% of the search rows


def test_an_early_stopped_booster_is_priced_by_the_rounds_it_keeps():
    cand = candidate_from({"family": "catboost", "catboost.iterations": 704}, None)
    assert trained_rounds(cand, 640) == 704  # stopped by the round budget before its patience ran out
    assert trained_rounds(cand, 633) == 703
    assert trained_rounds(cand, 300) == 370
    assert trained_rounds(cand, None) is None
    attrs = {"fold_fit_s": 6.6, "export_s": 0.0, "seconds": 6.6}
    full = final_cost(attrs, 1, refit_full=True)
    early = final_cost({**attrs, "best_rounds": 300, "trained_rounds": 370}, 1, refit_full=True, early_ratio=0.8)
    assert early - 0.5 == pytest.approx((full - 0.5) * 0.8 * 300 / 370)
    budget = Budget(start=0.0, time_s=60.0)  # trial_final_cost takes the family's measured ratio
    with_family = trial_final_cost({**attrs, "best_rounds": 300, "trained_rounds": 370}, 1, budget, "catboost")
    assert with_family == pytest.approx(early)
    assert trial_final_cost(attrs, 1, budget, "catboost") == pytest.approx(full)  # k-fold trials: no rounds kept


def _trial(number: int, value: float) -> SimpleNamespace:
    return SimpleNamespace(number=number, values=[value], params={"family": "x"}, user_attrs={})


def test_reorder_ranks_the_rescored_trials_by_the_mean_of_both_estimates():
    done = [_trial(1, 0.70), _trial(2, 0.69), _trial(3, 0.68), _trial(4, 0.60)]  # AUC, best first
    fresh = {1: 0.60, 2: 0.68, 3: float("nan")}  # trial 1 was lucky; trial 3's re-score failed
    assert [t.number for t in reorder(done, fresh, greater_is_better=True)] == [2, 1, 3, 4]
    with_baseline = [_trial(0, 0.75), *done]  # a constant ranked first keeps its place
    assert [t.number for t in reorder(with_baseline, fresh, greater_is_better=True)] == [0, 2, 1, 3, 4]
    loss = [_trial(1, 0.30), _trial(2, 0.31)]  # lower is better
    assert [t.number for t in reorder(loss, {1: 0.40, 2: 0.31}, greater_is_better=False)] == [2, 1]


def test_the_search_keeps_time_for_rescoring_at_most_a_tenth_of_the_budget():
    import time

    b = Budget(start=time.time(), time_s=60.0)
    done = [(0.9, 2.0), (0.8, 1.0)]
    seconds = [(0.9, 1.0), (0.8, 2.0), (0.7, 30.0), (0.5, 4.0)]
    assert rescore_s(seconds, Budget(start=0.0, time_s=60.0, rescore_top=2)) == 3.0
    assert rescore_s(seconds, Budget(start=0.0, time_s=60.0, rescore_top=3)) == 6.0  # capped at 10% of 60 s
    assert rescore_s(seconds, Budget(start=0.0, time_s=60.0, rescore_top=0)) == 0.0
    # trials that ran beside another worker's are re-scored alone, in less time than they took
    side = Budget(start=0.0, time_s=60.0, rescore_top=2, concurrent=True)
    assert rescore_s(seconds, side) == pytest.approx(3.0 * SOLO_RATIO)
    assert reserve(done, b, 3.0) == pytest.approx(reserve(done, b) + 3.0, abs=0.05)


def test_the_last_resorts_keep_runs_in_the_grace_for_the_search_and_the_ladder_alike(monkeypatch):
    """The time kept for what follows a failed first attempt may run past the deadline (5% of the budget): the
    search does not stop early for it, and the final stage's first attempt counts it the same way, so that the
    attempt the search kept time for is not then skipped as too costly."""
    import time

    from automl.search.budget import first_attempt_s, margin
    from automl.stages import final as final_mod
    from automl.stages.refit import Extras

    b = Budget(start=time.time(), time_s=60.0, reports_s=2.0)
    b.ensemble_room = False
    done = [(0.9, 8.0), (0.8, 1.0)]  # a costly best trial and a cheap one (the last resort)
    keep = 1.5 * min(2.0 * 1.0, 1.0 + 1.0) + 0.5  # 3.5 s for the last resort
    assert b.grace_s == 3.0 and b.kept(keep) == pytest.approx(0.5) and b.kept(2.0) == 0.0
    assert reserve(done, b) == pytest.approx(first_attempt_s(done, b) + 0.5 + margin(b), abs=0.05)

    # the ladder, at the moment the search stopped: the first attempt fits beside the kept part of the keep
    b2 = Budget(start=time.time() - 60.0 + reserve(done, b), time_s=60.0, reports_s=2.0)
    calls: list[float] = []

    def refit(fn, args, *, timeout_s, memory_mb, on_message=None):
        from automl.search.supervisor import COMPLETE, Outcome

        calls.append(timeout_s)
        return Outcome(COMPLETE, {"model": b"onnx", "parity": {"passed": True}})

    stage = final_mod.FinalStage.__new__(final_mod.FinalStage)
    stage.budget, stage.run_supervised, stage.refit = b2, refit, None
    stage.data = stage.final_data = type("D", (), {"y": np.zeros(10)})()
    stage.cfg = type("C", (), {"export": type("E", (), {"parity_tol": 1e-5, "parity_rows": 10, "refit_full": True,
                                                          "variants": [], "variant_tol": 0.0})(),
                                "budget": type("B", (), {"time_s": 60.0, "memory_mb": 0})(), "task": None})()
    stage.prep = type("P", (), {"X_hold": None, "y_hold": np.zeros(0), "classes": None, "sampled": None,
                                "memory_bound": False, "hold_groups": None})()
    stage.meta = {}
    stage.cost_of = lambda trial, scale=None: 8.0  # the price the search's reserve carried
    plan = final_mod.Plan("single", [(type("T", (), {"number": 0, "params": {"family": "hgb"}, "user_attrs": {}})(),
                                      1.0)])
    monkeypatch.setattr(final_mod, "extras_for", lambda *a, **k: Extras())
    _, _, started = stage._attempt(plan, False, keep, 0.0, None, None, [])
    assert started == 1 and calls[0] >= 8.0  # tried, with at least its price as its limit


@pytest.mark.parametrize("family", ["lightgbm", "xgboost", "catboost"])
def test_boosting_stops_early_on_the_inner_split_and_the_refit_keeps_those_rounds(family):
    """On one inner split a boosting family stops on its validation rows; the trial records the rounds it
    kept, the exported graph (early-stopped model) passes parity, and the final stage's candidate refits
    with those rounds."""
    import pandas as pd

    from automl.data.roles import infer_schema, to_model_frame
    from automl.evaluation.metrics import get_metric
    from automl.search import objective as obj

    rng = np.random.default_rng(0)
    n = 800
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(list("xyz"), n)})
    y = df["a"].to_numpy() + 0.3 * rng.normal(size=n)
    schema = infer_schema(df.assign(y=y), "y", [], [])
    data = obj.SearchData(X=to_model_frame(df, schema), y=y, folds=cv_folds(y, "regression", 1, 0), schema=schema,
                          missing_numeric=[], task="regression", metric=get_metric("rmse"), n_classes=0, seed=0,
                          families=[family], n_jobs=1)
    params = obj.default_params(data, family)
    rounds = "iterations" if family == "catboost" else "n_estimators"
    params.update({f"{family}.{rounds}": 1000, f"{family}.learning_rate": 0.3})
    cand = obj.candidate_from(params)
    out = obj.cross_validate(None, data, cand)
    assert 1 <= out["best_rounds"] < 1000 and np.isfinite(out["mean"]) and out["export_s"] is not None
    refit = obj.candidate_from(params, out["best_rounds"])
    assert refit.params[rounds] == out["best_rounds"]
    kfold = obj.SearchData(X=data.X, y=y, folds=cv_folds(y, "regression", 3, 0), schema=schema, missing_numeric=[],
                           task="regression", metric=get_metric("rmse"), n_classes=0, seed=0, families=[family],
                           n_jobs=1)
    assert obj.cross_validate(None, kfold, cand)["best_rounds"] is None  # k-fold CV: the sampled rounds


def test_no_time_is_kept_for_rescoring_before_a_trial_other_than_the_baseline_completed():
    five = Budget(start=0.0, time_s=60.0, rescore_top=5)
    assert rescore_s([], five) == 0.0
    assert rescore_s([(0.8, 3.0)], five) == 3.0  # a forked worker sees its own trials only


def _oof_trial(number: int, value: float, family: str, oof: np.ndarray, oof_dir) -> SimpleNamespace:
    np.save(oof_file(oof_dir, number), oof.astype(np.float32))
    return SimpleNamespace(number=number, value=value, params={"family": family}, user_attrs={})


def test_the_ensemble_room_goes_back_to_the_search_when_no_ensemble_would_be_chosen(tmp_path):
    rng = np.random.default_rng(0)
    n = 2000
    y = rng.normal(size=n)
    data = SimpleNamespace(metric=get_metric("rmse"), n_classes=0, task="regression", tune_threshold=False,
                           scored=np.arange(n), oof_y=y)
    a, b = y + rng.normal(size=n), y + rng.normal(size=n)  # independent errors: their mean halves the variance
    diverse = [_oof_trial(1, 1.0, "lightgbm", a, tmp_path), _oof_trial(2, 1.0, "knn", b, tmp_path)]
    assert ensemble_pays(diverse, data, tmp_path, lambda t: 1.0, room=10.0) == pytest.approx(1.0)  # the other member
    assert ensemble_pays(diverse, data, tmp_path, lambda t: 1.0, room=1.5) is None  # no room for a second member
    same = [_oof_trial(3, 1.0, "lightgbm", a, tmp_path), _oof_trial(4, 1.1, "knn", 1.3 * a, tmp_path),
            _oof_trial(0, 2.0, "baseline", np.zeros(n), tmp_path)]
    assert ensemble_pays(same, data, tmp_path, lambda t: 1.0, room=10.0) is None
    b = Budget(start=time.time(), time_s=60.0)
    done = [(-1.0, 5.0)]
    kept = reserve(done, b)
    b.ensemble_room = False
    assert reserve(done, b) == pytest.approx(kept - min(1.5 * 5.0, 0.1 * 60.0), abs=0.05)


def test_the_ensemble_room_is_what_the_other_members_cost_once_known():
    from automl.search.budget import first_attempt_s
    from automl.search.ensemble_room import extra_room_s

    b = Budget(start=time.time(), time_s=60.0)
    done = [(0.9, 2.0), (0.8, 1.0)]
    assert first_attempt_s(done, b) == pytest.approx(2.0 + 3.0)  # not asked yet: 1.5 x the best's cost at most
    b.ensemble_room, b.ensemble_extra_s = True, 1.2  # a linear member beside the best
    assert first_attempt_s(done, b) == pytest.approx(2.0 + 1.2 * 1.2 + 1.0)
    b.ensemble_extra_s = 20.0  # more than the room: the room goes back to the search
    assert first_attempt_s(done, b) == pytest.approx(2.0)
    # a costly best single: the final stage keeps SAFETY x its cost (beyond the grace) to follow the ensemble,
    # more than the room, so it would not try the ensemble: nothing is kept for it
    b.ensemble_extra_s = 1.2
    assert first_attempt_s([(0.9, 10.0), (0.8, 1.0)], b) == pytest.approx(10.0)
    # the members Caruana chose beside the best single, each once
    assert extra_room_s([8.0, 1.2, 3.0, 5.0], [0, 1, 0, 1]) == pytest.approx(1.2)
    assert extra_room_s([8.0, 1.2, 3.0, 5.0], [0, 3, 1]) == pytest.approx(6.2)


def test_the_final_cost_is_the_sum_of_its_parts():
    from automl.search.budget import final_cost_parts

    attrs = {"fold_fit_s": 0.6, "seconds": 4.0, "export_s": 2.4, "predict_ms_per_row": 0.01}
    parts = final_cost_parts(attrs, 1, refit_full=True, holdout_rows=3000)
    assert set(parts) == {"fit", "export", "predict", "fixed"}
    assert final_cost(attrs, 1, refit_full=True, holdout_rows=3000) == pytest.approx(sum(parts.values()))
    assert parts["export"] == pytest.approx(2.4 * (1.25 * 1.25 + 1.25))  # both exports: all rows, search rows


def test_an_estimated_export_is_priced_for_the_categorical_levels_each_export_carries():
    """A trial that was not exported prices its export from its fit, which says nothing of a 50,000-level
    column's encoder; the run's level count adds LEVEL_EXPORT_S per level per export (two with refit_full). A trial
    that was exported measured it already."""
    from automl.search.budget import LEVEL_EXPORT_S

    estimated = {"fold_fit_s": 0.2, "seconds": 1.0, "export_s": 0.05, "export_estimated": True}
    base = final_cost(estimated, 5, refit_full=True)
    assert final_cost(estimated, 5, refit_full=True, levels=50_000) == pytest.approx(base + 2 * 50_000 * LEVEL_EXPORT_S)
    one = final_cost(estimated, 5, refit_full=False)
    assert final_cost(estimated, 5, refit_full=False, levels=50_000) == pytest.approx(one + 50_000 * LEVEL_EXPORT_S)
    measured = {**estimated, "export_estimated": False}
    assert final_cost(measured, 5, levels=50_000) == pytest.approx(final_cost(measured, 5))
    budget = Budget(start=0.0, time_s=20.0, export_levels=50_000)
    no_levels = Budget(start=0.0, time_s=20.0)
    assert trial_final_cost(estimated, 5, budget, "linear") > trial_final_cost(estimated, 5, no_levels, "linear")
