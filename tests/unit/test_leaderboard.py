"""Trials -> leaderboard: ranked completed trials first, every failure listed with its reason."""
from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from automl.evaluation.leaderboard import COLUMNS, build_leaderboard

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study(direction: str) -> optuna.Study:
    """Six finished trials (3 complete, 2 failed, 1 skipped), one left running and one still waiting."""
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.RandomSampler(seed=0))
    families = ["linear", "catboost", "random_forest", "knn", "mlp", "xgboost", "baseline"]

    def trial(family: str, status: str, **attrs):
        study.enqueue_trial({"family": family})  # the sampled family is fixed, the rest is sampled
        t = study.ask()
        assert t.suggest_categorical("family", families) == family
        t.suggest_float(f"{family}.lr", 0.01, 1.0)
        t.set_user_attr("status", status)
        for k, v in attrs.items():
            t.set_user_attr(k, v)
        return t

    study.tell(trial("linear", "COMPLETE", cv_std=0.01, fit_s=0.2, preprocessing="scaler=standard",
                     origin="default"), 0.70)
    study.tell(trial("catboost", "FAIL", error="ValueError: boom"), state=TrialState.FAIL)
    study.tell(trial("random_forest", "COMPLETE", cv_std=0.02), 0.90)
    study.tell(trial("knn", "TIMEOUT", error="exceeded its time limit of 3.0s"), state=TrialState.FAIL)
    study.tell(trial("mlp", "COMPLETE"), 0.80)
    study.tell(trial("catboost", "SKIPPED", error="skipped: expected 9.0s, 2.0s left"), state=TrialState.PRUNED)
    trial("xgboost", "COMPLETE")  # asked, never told: still RUNNING
    study.enqueue_trial({"family": "baseline"})  # WAITING: never asked, not a row
    return study


@pytest.mark.parametrize("direction,order", [("maximize", [2, 4, 0]), ("minimize", [0, 4, 2])])
def test_ranked_by_cv_score_in_the_metric_direction(direction, order):
    lb = build_leaderboard(_study(direction), greater_is_better=direction == "maximize")
    assert list(lb.columns) == COLUMNS
    done = lb[lb["status"] == "COMPLETE"]
    assert done["trial"].tolist() == order
    assert done["rank"].tolist() == [1, 2, 3]
    assert done["family"].tolist() == [{0: "linear", 2: "random_forest", 4: "mlp"}[i] for i in order]


def test_failures_and_running_trials_are_listed_unranked_with_their_reason():
    lb = build_leaderboard(_study("maximize"), greater_is_better=True)
    assert len(lb) == 7  # the waiting trial is not a row
    assert lb["rank"].iloc[:3].notna().all() and lb["rank"].iloc[3:].isna().all()  # ranked rows first
    rest = lb.iloc[3:].set_index("trial")
    assert rest.loc[1, "status"] == "FAIL" and rest.loc[1, "error"] == "ValueError: boom"
    assert rest.loc[3, "status"] == "TIMEOUT" and "time limit" in rest.loc[3, "error"]
    assert rest.loc[5, "status"] == "SKIPPED" and rest.loc[5, "error"].startswith("skipped")
    assert rest.loc[6, "status"] == "RUNNING"
    assert rest["cv_mean"].isna().all()


def test_row_contents():
    lb = build_leaderboard(_study("maximize"), greater_is_better=True).set_index("trial")
    row = lb.loc[0]
    assert row["cv_mean"] == 0.70 and row["cv_std"] == 0.01 and row["fit_s"] == 0.2
    assert row["preprocessing"] == "scaler=standard" and row["origin"] == "default"
    assert lb.loc[2, "origin"] == "sampler"
    params = json.loads(row["params"])
    assert set(params) == {"linear.lr"}  # the family is its own column, not a parameter
    assert pd.isna(lb.loc[0, "holdout"])  # no final model chosen yet


def test_the_chosen_trial_carries_the_holdout_score():
    lb = build_leaderboard(_study("maximize"), True, {"trial": 2, "holdout_score": 0.88}).set_index("trial")
    assert lb.loc[2, "holdout"] == 0.88
    assert lb.drop(index=2)["holdout"].isna().all()


def test_an_ensemble_adds_its_own_row_and_member_weights():
    final = {"trial": "ensemble", "holdout_score": 0.91, "cv_mean": 0.93,
             "members": [{"trial": 2, "family": "random_forest", "weight": 0.75},
                         {"trial": 4, "family": "mlp", "weight": 0.25}]}
    lb = build_leaderboard(_study("maximize"), True, final)
    assert lb.iloc[0]["trial"] == "ensemble" and lb.iloc[0]["rank"] == 1  # 0.93 beats every single trial
    assert lb.iloc[0]["holdout"] == 0.91
    weights = lb.set_index("trial")["ensemble_weight"]
    assert weights[2] == 0.75 and weights[4] == 0.25 and pd.isna(weights[0])


def test_a_stack_names_its_members_without_weights_and_the_card_says_how_it_combines():
    """A stack's members are combined by its stacker: no Caruana weight (here all on the best single, the bar the
    stack beat) is shown as theirs, in the leaderboard or the card."""
    from automl.reporting.model_card import combined_lines

    stacker = {"kind": "logistic", "C": 1.0, "nested_oof_score": 0.66, "caruana_oof_score": 0.65,
               "caruana_score_kind": "in-sample"}
    final = {"trial": "ensemble", "kind": "ensemble", "holdout_score": 0.7, "cv_mean": 0.66, "stacker": stacker,
             "members": [{"trial": 2, "family": "linear", "cv_mean": 0.65},
                         {"trial": 4, "family": "random_forest", "cv_mean": 0.66}]}
    lb = build_leaderboard(_study("maximize"), True, final)
    row = lb.set_index("trial").loc["ensemble"]
    assert row["preprocessing"] == "2:linear + 4:random_forest" and row["origin"].startswith("stacked")
    assert lb.set_index("trial").drop(index="ensemble")["ensemble_weight"].isna().all()
    card = "\n".join(combined_lines(final, "binary", "roc_auc"))
    assert "**stacked** ensemble of 2 pipelines" in card and "logistic regression (C = 1)" in card
    assert "0.66 against 0.65" in card and "| weight" not in card
    assert "weights are selection counts" in "\n".join(combined_lines(
        {**final, "stacker": None, "members": [{**m, "weight": 0.5} for m in final["members"]]}, "binary", "roc_auc"))
