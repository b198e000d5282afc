"""Search spaces as data, and the metric registry."""
from __future__ import annotations

import numpy as np
import optuna
import pytest
from sklearn import metrics as skm

from automl.errors import UserError
from automl.evaluation.metrics import METRICS, get_metric
from automl.search import space as sp


def test_when_conditions_make_parameters_conditional(tmp_path):
    (tmp_path / "fam.yaml").write_text(
        "penalty: {type: categorical, choices: [ridge, elasticnet], default: ridge}\n"
        "l1_ratio: {type: float, low: 0.1, high: 1.0, default: 0.5, when: {penalty: elasticnet}}\n"
        "C: {type: float, low: 0.01, high: 10, log: true, default: 1.0, when: {task: [binary]}}\n")
    space = sp.load_space("fam", tmp_path)
    seen = set()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        trial = study.ask()
        chosen = sp.suggest(trial, space, "fam", {"task": "regression"})
        assert "C" not in chosen
        assert ("l1_ratio" in chosen) == (chosen["penalty"] == "elasticnet")
        seen.add(chosen["penalty"])
        study.tell(trial, 0.0)
    assert seen == {"ridge", "elasticnet"}
    assert sp.defaults(space, "fam", {"task": "binary"}) == {"fam.penalty": "ridge", "fam.C": 1.0}


@pytest.mark.parametrize("text,match", [
    ("a: {type: float, low: 2, high: 1}", "low < high"),
    ("a: {type: foo}", "needs type"),
    ("a: {type: int, low: 0, high: 5, log: true}", "log range"),
    ("a: {type: categorical, choices: [x], default: y}", "not among the choices"),
    ("a: {type: int, low: 1, high: 5, typo: 1}", "unknown field"),
])
def test_bad_space_files_are_user_errors(tmp_path, text, match):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(UserError, match=match):
        sp.load_space("bad", tmp_path)


def test_every_shipped_space_and_portfolio_loads():
    for f in sp.DEFAULT_SPACE_DIR.glob("*.yaml"):
        sp.load_space(f.stem)
        sp.load_portfolio(f.stem)


def test_metric_values_and_directions():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p1 = np.clip(y * 0.6 + rng.random(200) * 0.4, 0, 1)
    P = np.c_[1 - p1, p1]
    assert get_metric("roc_auc")(y, P, 2) == pytest.approx(skm.roc_auc_score(y, p1))
    assert get_metric("log_loss")(y, P, 2) == pytest.approx(skm.log_loss(y, P), rel=1e-6)
    assert get_metric("f1")(y, P, 2) == pytest.approx(skm.f1_score(y, P.argmax(1)))
    yr = rng.normal(size=50)
    pr = yr + rng.normal(0, 0.1, 50)
    assert get_metric("rmse")(yr, pr) == pytest.approx(np.sqrt(skm.mean_squared_error(yr, pr)))
    assert get_metric("r2")(yr, pr) == pytest.approx(skm.r2_score(yr, pr))
    assert {m.name for m in METRICS.values() if m.direction == "minimize"} == {"log_loss", "rmse", "mse", "mae", "mape"}
