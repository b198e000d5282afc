"""search.objectives: a multi-objective study (CV score, the trial graph's latency and size) run by the real
trial loop; its Pareto front is non-dominated, the leaderboard marks exactly it, and every trial's costs are
its own graph's measurement (or a labelled estimate where the search did not export it)."""
from __future__ import annotations

import time

import numpy as np
import pytest

from automl.data.roles import infer_schema, to_model_frame
from automl.data.split import cv_folds
from automl.data.target import prepare_target
from automl.errors import UserError
from automl.evaluation.leaderboard import build_leaderboard
from automl.evaluation.metrics import get_metric
from automl.evaluation.pareto import front_mask, objective_names
from automl.search import loop
from automl.search.budget import Budget
from automl.search.deploy_cost import cost_values
from automl.search.objective import SearchData
from automl.search.study import make_study, study_objectives, warm_start

from ..conftest import tiny_frame

OBJECTIVES = ("metric", "latency", "size")


def _data() -> SearchData:
    df = tiny_frame("binary", n=80)
    schema = infer_schema(df, "y", [], [])
    y, _ = prepare_target(df, "y", "binary")
    # a forest's graph is bigger and slower than a linear model's or a constant's: the front has a shape
    return SearchData(X=to_model_frame(df, schema), y=y, folds=cv_folds(y, "binary", 3, 0), schema=schema,
                      missing_numeric=["x2"], task="binary", metric=get_metric("roc_auc"), n_classes=2, seed=0,
                      families=["baseline", "linear", "random_forest"], n_jobs=1)


def test_names_normalised_and_refused():
    assert objective_names(["size", "metric", "latency"]) == ("metric", "size", "latency")
    assert objective_names(["roc_auc", "latency"], "roc_auc") == ("metric", "latency")
    for bad in (["metric", "speed"], ["latency"], ["metric", "size", "size"]):
        with pytest.raises(ValueError):
            objective_names(bad)


def test_a_study_made_with_other_objectives_is_not_reused(tmp_path):
    study = make_study(tmp_path / "s.journal", "t", "maximize", "tpe", 0, 10, True, "median", objectives=OBJECTIVES)
    study.enqueue_trial({"family": "linear"})
    t = study.ask()
    t.suggest_categorical("family", ["linear"])
    study.tell(t, [0.5, 0.1, 0.01])
    with pytest.raises(UserError, match=r"search\.objectives"):
        make_study(tmp_path / "s.journal", "t", "maximize", "tpe", 0, 10, True, "median",
                   objectives=("metric", "size"))


def test_multi_objective_front_is_non_dominated_and_marked_in_the_leaderboard(tmp_path):
    data = _data()
    study = make_study(tmp_path / "study.journal", "t", "maximize", "tpe", 0, 4, True, "median",
                       objectives=OBJECTIVES)
    assert study_objectives(study) == OBJECTIVES and len(study.directions) == 3
    warm_start(study, data)
    res = loop.run_search(study, data, Budget(start=time.time(), time_s=120.0, n_trials=9, trial_time_s=30.0))
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) >= 6 and res.pruned == 0, [(t.state, t.user_attrs.get("error")) for t in study.trials]
    # every completed trial told the study its graph's own measurement: p50 ms and MB
    for t in done:
        assert t.user_attrs["objective_source"] == "measured"
        assert t.values[1] == t.user_attrs["onnx_ms_p50"]
        assert t.values[2] == pytest.approx(t.user_attrs["onnx_bytes"] / 1e6)
    fams = {t.params["family"] for t in done}
    assert {"linear", "random_forest"} <= fams

    front = {t.number for t in study.best_trials}
    values = np.array([t.values for t in done])
    mask = front_mask(values[:, 0], values[:, 1:], greater_is_better=True)  # checked independently of Optuna
    assert front == {t.number for t, on in zip(done, mask, strict=True) if on}
    for t in done:  # a front member is dominated by no trial; every other trial is dominated by a front member
        a = np.array([-t.values[0], *t.values[1:]])
        dominated_by = [u for u in done if (np.array([-u.values[0], *u.values[1:]]) <= a).all()
                        and (np.array([-u.values[0], *u.values[1:]]) < a).any()]
        assert (t.number in front) == (not dominated_by)
    # the best-scoring trial is on the front: what the final stage ships first (Searched.front_first)
    assert max(done, key=lambda t: t.values[0]).number in front
    assert 1 <= len(front) < len(done)

    board = build_leaderboard(study, True, {})
    marked = {int(n) for n in board.loc[board["front"].astype(bool), "trial"]}
    assert marked == front


def test_costs_of_a_trial_not_exported_are_a_labelled_estimate():
    measured = [("forest", {"onnx_bytes": 3_000_000, "onnx_ms_p50": 0.9}),
                ("forest", {"onnx_bytes": 5_000_000, "onnx_ms_p50": 1.1}),
                ("linear", {"onnx_bytes": 2_000, "onnx_ms_p50": 0.05})]
    own = {"onnx_bytes": 1_000_000, "onnx_ms_p50": 0.4}
    assert cost_values(["latency", "size"], own, "forest", measured) == ([0.4, 1.0], "measured")
    vals, how = cost_values(["size", "latency"], {}, "forest", measured)
    assert vals == [pytest.approx(4.0), pytest.approx(1.0)] and how.startswith("estimate: median of 2 measured forest")
    vals, how = cost_values(["size"], {}, "knn", measured)
    assert vals == [pytest.approx(3.0)] and "any family" in how
    vals, how = cost_values(["latency"], {}, "knn", [])
    assert vals == [float("inf")] and "none measured" in how


def test_a_joining_worker_opens_the_same_study_as_the_driver(tmp_path):
    """automl worker opens the study through the same search_study as the driver: the same directions and the
    same constrained sampling (a joiner's trials get their constraint values too)."""
    from automl.config.schema import RunConfig
    from automl.search.study import search_study

    cfg = RunConfig()
    cfg.search.objectives = ["metric", "latency"]
    cfg.constraints.max_model_mb = 0.5
    driver = search_study(cfg, tmp_path / "s.journal", "minimize", 0, True, "", "rmse")
    joiner = search_study(cfg, tmp_path / "s.journal", "minimize", 1234, True, "", "rmse")
    assert [d.name for d in joiner.directions] == [d.name for d in driver.directions] == ["MINIMIZE", "MINIMIZE"]
    for study, mb in ((driver, 2.0), (joiner, 0.1)):
        study.enqueue_trial({"family": "forest"})
        t = study.ask()
        t.suggest_categorical("family", ["forest"])
        t.set_user_attr("onnx_bytes", int(mb * 1e6))
        t.set_user_attr("onnx_ms_p50", 0.2)
        study.tell(t, [1.0, 0.2])
    got = [list(t.system_attrs["constraints"]) for t in driver.trials]
    assert got == [[pytest.approx(1.5), 0.0], [pytest.approx(-0.4), 0.0]]
