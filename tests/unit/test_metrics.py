"""The metric registry: values agree with scikit-learn, directions and tasks are right, one tie rule."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from automl.evaluation.metrics import (
    DEFAULT_METRIC,
    METRICS,
    get_metric,
    holdout_metrics,
    labels_from_proba,
)

RNG = np.random.default_rng(0)
Y_BIN = RNG.integers(0, 2, 300)
P1 = np.clip(Y_BIN * 0.5 + RNG.random(300) * 0.5, 0.0, 1.0)
P_BIN = np.c_[1 - P1, P1]
Y_MC = RNG.integers(0, 3, 300)
_raw = RNG.random((300, 3)) + 1.5 * np.eye(3)[Y_MC]
P_MC = _raw / _raw.sum(axis=1, keepdims=True)
Y_REG = RNG.normal(3.0, 1.0, 200)
P_REG = Y_REG + RNG.normal(0, 0.3, 200)


@pytest.mark.parametrize("name,expected", [
    ("roc_auc", lambda: skm.roc_auc_score(Y_BIN, P1)),
    ("log_loss", lambda: skm.log_loss(Y_BIN, P_BIN)),
    ("average_precision", lambda: skm.average_precision_score(Y_BIN, P1)),
    ("accuracy", lambda: skm.accuracy_score(Y_BIN, P_BIN.argmax(1))),
    ("balanced_accuracy", lambda: skm.balanced_accuracy_score(Y_BIN, P_BIN.argmax(1))),
    ("precision", lambda: skm.precision_score(Y_BIN, P_BIN.argmax(1))),
    ("recall", lambda: skm.recall_score(Y_BIN, P_BIN.argmax(1))),
    ("f1", lambda: skm.f1_score(Y_BIN, P_BIN.argmax(1))),
])
def test_binary_metrics_match_sklearn(name, expected):
    assert get_metric(name)(Y_BIN, P_BIN, 2) == pytest.approx(expected(), rel=1e-9)


@pytest.mark.parametrize("name,expected", [
    ("roc_auc", lambda: skm.roc_auc_score(Y_MC, P_MC, multi_class="ovr")),
    ("log_loss", lambda: skm.log_loss(Y_MC, P_MC)),
    ("accuracy", lambda: skm.accuracy_score(Y_MC, P_MC.argmax(1))),
    ("balanced_accuracy", lambda: skm.balanced_accuracy_score(Y_MC, P_MC.argmax(1))),
    ("f1", lambda: skm.f1_score(Y_MC, P_MC.argmax(1), average="macro")),
    ("precision", lambda: skm.precision_score(Y_MC, P_MC.argmax(1), average="macro")),
    ("average_precision", lambda: skm.average_precision_score(np.eye(3)[Y_MC], P_MC, average="macro")),
])
def test_multiclass_metrics_match_sklearn(name, expected):
    assert get_metric(name)(Y_MC, P_MC, 3) == pytest.approx(expected(), rel=1e-9)


@pytest.mark.parametrize("name,expected", [
    ("rmse", lambda: np.sqrt(skm.mean_squared_error(Y_REG, P_REG))),
    ("mse", lambda: skm.mean_squared_error(Y_REG, P_REG)),
    ("mae", lambda: skm.mean_absolute_error(Y_REG, P_REG)),
    ("r2", lambda: skm.r2_score(Y_REG, P_REG)),
    ("mape", lambda: skm.mean_absolute_percentage_error(Y_REG, P_REG)),
])
def test_regression_metrics_match_sklearn(name, expected):
    assert get_metric(name)(Y_REG, P_REG) == pytest.approx(expected(), rel=1e-9)
    assert get_metric(name)(Y_REG, P_REG.reshape(-1, 1)) == pytest.approx(expected(), rel=1e-9)  # [N,1] too


def test_directions():
    minimize = {m.name for m in METRICS.values() if m.direction == "minimize"}
    assert minimize == {"log_loss", "rmse", "mse", "mae", "mape"}
    assert all(m.direction in ("minimize", "maximize") for m in METRICS.values())
    for m in METRICS.values():
        assert m.greater_is_better == (m.direction == "maximize")


@pytest.mark.parametrize("name", sorted(METRICS))
def test_a_better_prediction_scores_better(name):
    """Direction and value agree: a perfect prediction beats a noisy one in the metric's own direction."""
    m = METRICS[name]
    if "regression" in m.tasks:
        y, good, bad, c = Y_REG, Y_REG + 0.01, P_REG, 0
    elif "multiclass" not in m.tasks:  # binary-only metrics
        y, good, bad, c = Y_BIN, np.eye(2)[Y_BIN] * 0.98 + 0.01, np.c_[P1, 1 - P1], 2
    else:
        y, good, bad, c = Y_MC, np.eye(3)[Y_MC] * 0.98 + 0.02 / 3, np.full((300, 3), 1 / 3), 3
        bad = bad + RNG.random((300, 3)) * 1e-3
        bad = bad / bad.sum(axis=1, keepdims=True)
    g, b = m(y, good, c), m(y, bad, c)
    assert (g > b) if m.greater_is_better else (g < b), (g, b)


def test_tasks_and_defaults():
    for m in METRICS.values():
        assert m.tasks in ({"binary", "multiclass"}, {"regression"}, {"binary"}), m.name
    for task, name in DEFAULT_METRIC.items():
        assert task in METRICS[name].tasks
    assert DEFAULT_METRIC == {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}


def test_one_tie_rule_first_max():
    p = np.array([[0.5, 0.5], [0.2, 0.8], [0.4, 0.3 + 0.1]])
    assert labels_from_proba(p).tolist() == [0, 1, 0]
    # accuracy follows the same rule: a tie predicts the first class
    assert get_metric("accuracy")(np.array([0]), np.array([[0.5, 0.5]]), 2) == 1.0


def test_log_loss_survives_zero_probabilities_and_absent_classes():
    y = np.array([0, 1, 2])
    p = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert get_metric("log_loss")(y, p, 3) == pytest.approx(0.0, abs=1e-12)
    y2 = np.array([0, 0, 1])  # class 2 absent from this fold: labels still span all classes
    assert np.isfinite(get_metric("log_loss")(y2, p, 3))


def test_holdout_metrics_lists_every_metric_of_the_task():
    out = holdout_metrics("binary", Y_BIN, P_BIN, 2)
    # constrained metrics (precision_at_recall, ...) need their minimum: listed only as the run's metric
    assert set(out) == {n for n, m in METRICS.items() if "binary" in m.tasks and "_at_" not in n}
    assert out["roc_auc"] == pytest.approx(skm.roc_auc_score(Y_BIN, P1), abs=1e-6)
    assert out["log_loss"] == pytest.approx(skm.log_loss(Y_BIN, P_BIN), abs=1e-6)
    assert set(holdout_metrics("regression", Y_REG, P_REG, 0)) == {"rmse", "mse", "mae", "r2", "mape"}


def test_holdout_metrics_leave_out_undefined_metrics_instead_of_nan():
    """roc_auc on a one-class holdout is undefined: it is left out (the manifest must stay valid JSON).
    scikit-learn 1.9 returns NaN with a warning here instead of raising ValueError."""
    import json

    out = holdout_metrics("binary", np.zeros(10, dtype=int), np.tile([0.7, 0.3], (10, 1)), 2)
    assert out["accuracy"] == 1.0
    assert all(np.isfinite(v) for v in out.values()), out
    json.dumps(out, allow_nan=False)
