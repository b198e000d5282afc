"""search.fixed: a pinned parameter is never sampled, every trial records its value, the warm start and
the portfolio keep it, the leaderboard and the card show it, and a bad pin names the key and the fix."""
from __future__ import annotations

import json

import optuna
import pytest

from automl.errors import UserError
from automl.evaluation.leaderboard import build_leaderboard
from automl.search import space as sp

from ..conftest import SPACE_DIR

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _spaces() -> dict[str, list[sp.ParamSpec]]:
    return {key: sp.load_space(key, SPACE_DIR) for key in ("lightgbm", "preprocessing")}


def test_nested_and_dotted_keys_flatten_alike():
    assert sp.flat_fixed({"lightgbm": {"num_leaves": 15}, "pre.scaler": "none"}) == {
        "lightgbm.num_leaves": 15, "pre.scaler": "none"}


def test_a_pinned_parameter_is_the_same_in_every_sampled_trial_and_recorded():
    spaces = _spaces()
    pinned = sp.pin(spaces, {"lightgbm": {"num_leaves": 15, "learning_rate": 0.1}})
    assert pinned == {"lightgbm.num_leaves": 15, "lightgbm.learning_rate": 0.1}
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=3))
    rates = set()
    for _ in range(12):
        t = study.ask()
        params = sp.suggest(t, spaces["lightgbm"], "lightgbm", {})
        assert params["num_leaves"] == 15 and params["learning_rate"] == 0.1
        assert t.params["lightgbm.num_leaves"] == 15  # Optuna records it: the leaderboard's params show it
        rates.add(params["min_child_samples"])
        study.tell(t, float(params["min_child_samples"]))
    assert len(rates) > 3  # the other parameters are still searched


def test_the_warm_start_and_portfolio_keep_the_pin():
    spaces = _spaces()
    sp.pin(spaces, {"lightgbm.num_leaves": 63})
    assert sp.defaults(spaces["lightgbm"], "lightgbm", {})["lightgbm.num_leaves"] == 63
    entry = {"num_leaves": 7, "learning_rate": 0.05}  # a portfolio entry that sets the pinned parameter
    params = sp.defaults(spaces["lightgbm"], "lightgbm", {}, entry)
    assert params["lightgbm.num_leaves"] == 63 and params["lightgbm.learning_rate"] == 0.05


@pytest.mark.parametrize("fixed,match", [
    ({"catboost.depth": 4}, "search.fixed.catboost.depth: 'catboost' is not a searched space"),
    ({"lightgbm.leaves": 4}, "search.fixed.lightgbm.leaves: 'leaves' is not a parameter of lightgbm.*num_leaves"),
    ({"lightgbm.num_leaves": 1000}, r"outside the searched range \[4, 128\]"),
    ({"lightgbm.num_leaves": 7.5}, "must be an integer"),
    ({"lightgbm.learning_rate": "fast"}, "must be a number"),
])
def test_a_bad_pin_names_the_key_the_rule_and_the_fix(fixed, match):
    with pytest.raises(UserError, match=match):
        sp.pin(_spaces(), fixed)


def test_the_leaderboard_lists_the_pins_each_trial_has():
    spaces = _spaces()
    pinned = sp.pin(spaces, {"lightgbm.num_leaves": 15})
    study = optuna.create_study(direction="maximize")
    for family in ("lightgbm", "linear"):
        study.enqueue_trial({"family": family})
        t = study.ask()
        t.suggest_categorical("family", ["lightgbm", "linear"])
        if family == "lightgbm":
            sp.suggest(t, spaces["lightgbm"], "lightgbm", {})
        study.tell(t, 0.5)
    lb = build_leaderboard(study, True, None, pinned).set_index("family")
    assert json.loads(lb.loc["lightgbm", "fixed"]) == {"lightgbm.num_leaves": 15}
    assert json.loads(lb.loc["linear", "fixed"]) == {}
    assert json.loads(lb.loc["lightgbm", "params"])["lightgbm.num_leaves"] == 15
