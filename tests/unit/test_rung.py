"""One inner split: a trial's cheap first fit on a quarter of the training rows (automl/search/rung.py)."""
from __future__ import annotations

from multiprocessing import Pipe

import numpy as np
import optuna
import pandas as pd
import pytest

from automl.data.roles import infer_schema, to_model_frame
from automl.data.split import cv_folds
from automl.evaluation.metrics import get_metric
from automl.search import objective as obj
from automl.search.rung import MIN_RUNG_ROWS, RUNG_STARTUP, rung_prunes, rung_rows, rung_sample
from automl.search.supervisor import Pruned


def test_only_one_inner_split_with_the_pruner_on_and_enough_rows_gets_a_rung():
    y = np.zeros(20_000)
    one = cv_folds(y, "regression", 1, 0)
    assert rung_rows(one, "median") == int(0.25 * len(one[0][0])) >= MIN_RUNG_ROWS
    assert rung_rows(one, "none") == 0
    assert rung_rows(cv_folds(y, "regression", 3, 0), "median") == 0  # k folds: the fold pruner's job
    assert rung_rows(cv_folds(np.zeros(6_000), "regression", 1, 0), "median") == 0  # 1,200 rows say too little
    tr = one[0][0]
    a, b = rung_sample(tr, 100, 7), rung_sample(tr, 100, 7)
    assert np.array_equal(a, b) and set(a) <= set(tr)  # the same rows for every trial of a run


def test_a_trial_below_the_median_rung_score_stops_once_enough_trials_have_one():
    study = optuna.create_study(direction="maximize")
    for v in [0.60, 0.70, 0.80, 0.90]:
        t = study.ask()
        t.report(v, 0)
        study.tell(t, v + 0.01)
    assert not rung_prunes(study, 99, 1, 0.50)  # RUNG_STARTUP earlier rung scores are needed first
    t = study.ask()
    t.report(0.65, 0)
    study.tell(t, state=optuna.trial.TrialState.PRUNED)  # a stopped trial's rung counts too
    assert RUNG_STARTUP == 5
    assert rung_prunes(study, 99, 1, 0.69) and not rung_prunes(study, 99, 1, 0.71)  # median 0.70
    assert rung_prunes(study, 99, -1, 0.71) and not rung_prunes(study, 99, -1, 0.69)  # lower is better


def _data(n: int) -> obj.SearchData:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = df["a"].to_numpy() + 0.3 * rng.normal(size=n)
    schema = infer_schema(df.assign(y=y), "y", [], [])
    folds = cv_folds(y, "regression", 1, 0)
    return obj.SearchData(X=to_model_frame(df, schema), y=y, folds=folds, schema=schema, missing_numeric=[],
                          task="regression", metric=get_metric("rmse"), n_classes=0, seed=0, families=["linear"],
                          n_jobs=1, rung_rows=rung_rows(folds, "median"))


def test_the_rung_reports_its_score_first_and_the_full_fit_follows_at_the_next_step():
    data = _data(12_000)
    assert data.rung_rows >= MIN_RUNG_ROWS
    cand = obj.candidate_from(obj.default_params(data, "linear"))
    child, parent = Pipe()
    parent.send("go")  # the driver's answers, in order: the rung goes on, the full fold goes on, no export
    parent.send("go")
    parent.send("skip")
    out = obj.cross_validate(child, data, cand)
    kind, step, rung_score = parent.recv()
    assert (kind, step) == ("rung", 0) and 0.25 < rung_score < 0.4  # RMSE near the noise's 0.3
    kind, step, full = parent.recv()
    assert (kind, step) == ("fold", 1) and full == pytest.approx(out["mean"])
    assert parent.recv()[0] == "export?"
    parent.send("prune")
    with pytest.raises(Pruned):
        obj.cross_validate(child, data, cand)
    assert parent.recv()[0] == "rung" and not parent.poll()  # stopped before the full fit
