"""The parity gate and holdout onnxruntime score in a process of their own (automl/stages/gate.py):
the refit's process opens no onnxruntime session, and what the gate reports is what it reported in the refit's."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from automl.data.roles import infer_schema, to_model_frame
from automl.data.split import cv_folds
from automl.evaluation.metrics import get_metric
from automl.search import objective as obj
from automl.search.supervisor import COMPLETE, TIMEOUT, Outcome, supervise
from automl.stages import gate as gate_mod
from automl.stages.refit import Extras, refit_export

TASKS = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}


def _data(task: str) -> tuple[obj.SearchData, pd.DataFrame, np.ndarray, list[int] | None]:
    rng = np.random.default_rng(0)
    n = 500
    X = rng.normal(size=(n, 4))
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(4)])
    df["c"] = rng.choice(["a", "b", "c"], n)
    signal = X[:, 0] + 0.5 * X[:, 1] + (df["c"] == "a") + rng.normal(scale=0.5, size=n)
    n_classes = {"binary": 2, "multiclass": 3, "regression": 0}[task]
    cuts = np.quantile(signal, np.linspace(0, 1, n_classes + 1)[1:-1]) if n_classes else None
    y = signal if cuts is None else np.digitize(signal, cuts)
    df["y"] = y
    schema = infer_schema(df, "y", [], [])
    Xm = to_model_frame(df, schema)
    fit, hold = slice(0, 380), slice(380, n)
    y_fit = np.asarray(y[fit])
    data = obj.SearchData(X=Xm.iloc[fit].reset_index(drop=True), y=y_fit, folds=cv_folds(y_fit, task, 3, 0),
                          schema=schema, missing_numeric=[], task=task, metric=get_metric(TASKS[task]),
                          n_classes=n_classes, seed=0, families=["random_forest"], n_jobs=1, imbalance=False)
    return data, Xm.iloc[hold].reset_index(drop=True), np.asarray(y[hold]), (None if task == "regression"
                                                                            else list(range(n_classes)))


def _in_process(fn, args, *, timeout_s, memory_mb):  # the supervisor's contract, without a child
    return Outcome(COMPLETE, value=fn(None, *args), seconds=0.1)


def _unnamed(model: bytes) -> bytes:  # skl2onnx names each graph with a fresh uuid
    import onnx

    m = onnx.load_from_string(model)
    m.graph.name = ""
    return m.SerializeToString()


FOREST = obj.Candidate("random_forest", {"n_estimators": 20, "max_depth": 6}, {})
LINEAR = obj.Candidate("linear", {}, {})
MODELS = {"single": [(FOREST, 1.0)], "ensemble": [(FOREST, 0.6), (LINEAR, 0.4)]}


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("refit_full", [True, False])
@pytest.mark.parametrize("model", list(MODELS))
def test_the_gate_apart_reports_what_the_refit_reported(task, refit_full, model, monkeypatch):
    data, X_hold, y_hold, classes = _data(task)
    args = (None, data, MODELS[model], X_hold, y_hold, classes, {}, 1e-5, 200)
    inside = refit_export(*args, refit_full=refit_full)

    def no_session(*a, **k):
        raise AssertionError("the refit's process opened an onnxruntime session")

    with monkeypatch.context() as m:  # the refit leaves every onnxruntime session to the gate's process
        m.setattr("automl.stages.refit.session", no_session)
        m.setattr("automl.export.onnx.session", no_session)
        left = refit_export(*args, refit_full=refit_full, extras=Extras(gate_apart=True))
    assert "gate" in left and "parity" not in left and "holdout_score_onnx" not in left
    assert ("holdout_graph" in left) == refit_full
    done = gate_mod.gated(Outcome(COMPLETE, value=left, seconds=0.1), _in_process, data, X_hold, y_hold, 1e-5, 200,
                          None, 10.0, 0.0)
    got = done.value
    assert done.status == COMPLETE and "gate" not in got and "holdout_graph" not in got
    assert _unnamed(got["model"]) == _unnamed(inside["model"])
    assert got["parity"] == inside["parity"] and got["parity"]["passed"]
    assert got["holdout_score_onnx"] == pytest.approx(inside["holdout_score_onnx"], rel=1e-9)
    assert got["holdout_score"] == inside["holdout_score"]
    assert {"parity_s", "gate_process_s"} <= set(got["timings"])
    # the refit's process exported the holdout's graph, the gate's scored it: both times are kept
    assert ({"holdout_export_s", "holdout_onnx_s"} <= set(got["timings"])) == refit_full


def test_a_parity_failure_in_the_gate_ends_the_attempt_without_a_model(monkeypatch):
    data, X_hold, y_hold, classes = _data("binary")
    left = refit_export(None, data, [(FOREST, 1.0)], X_hold, y_hold, classes, {}, 1e-5, 200, refit_full=True,
                        extras=Extras(gate_apart=True))
    off = left["gate"].python.copy()
    off[:, 1] = np.clip(off[:, 1] + 0.3, 0, 1)
    off[:, 0] = 1 - off[:, 1]
    left["gate"] = gate_mod.Pending(off, left["gate"].labels, left["gate"].fit_rows)
    done = gate_mod.gated(Outcome(COMPLETE, value=left, seconds=0.1), _in_process, data, X_hold, y_hold, 1e-5, 200,
                          None, 10.0, 0.0)
    assert done.status == COMPLETE and "model" not in done.value
    assert "ONNX parity failed" in done.value["parity_error"] and done.value["parity_failed_members"] == []
    # the holdout was still scored through onnxruntime, with the model it scored in Python
    assert done.value["holdout_score_onnx"] == pytest.approx(done.value["holdout_score"], abs=1e-6)


def test_an_ensemble_failing_the_gate_apart_leaves_its_members_unnamed():
    """None, not []: the final stage refits it once more with the gate in the refit's process, which names them
    (tests/unit/test_final_stage.py)."""
    data, X_hold, y_hold, classes = _data("regression")
    left = refit_export(None, data, MODELS["ensemble"], X_hold, y_hold, classes, {}, 1e-5, 200, refit_full=False,
                        extras=Extras(gate_apart=True))
    pending = left["gate"]
    assert pending.members == 2
    left["gate"] = gate_mod.Pending(pending.python + 1.0, None, pending.fit_rows, pending.members)
    done = gate_mod.gated(Outcome(COMPLETE, value=left, seconds=0.1), _in_process, data, X_hold, y_hold, 1e-5, 200,
                          None, 10.0, 0.0)
    assert "model" not in done.value and "ONNX parity failed" in done.value["parity_error"]
    assert done.value["parity_failed_members"] is None


def test_the_gate_runs_in_its_own_process_within_what_the_refit_left(monkeypatch):
    """The real supervisor: the gate's process is not the driver's, and it gets the attempt's limit less the
    refit's seconds (at least gate_floor_s: MIN_GATE_S plus GATE_S_PER_MB per MB of graph); a gate over its limit
    ends the attempt as a TIMEOUT."""
    data, X_hold, y_hold, classes = _data("regression")
    left = refit_export(None, data, [(FOREST, 1.0)], X_hold, y_hold, classes, {}, 1e-5, 200, refit_full=False,
                        extras=Extras(gate_apart=True))
    limits = []

    def run(fn, args, *, timeout_s, memory_mb):
        limits.append(timeout_s)
        return supervise(lambda conn, *a: {**fn(conn, *a), "pid": os.getpid()}, args, timeout_s=timeout_s,
                         memory_mb=memory_mb)

    done = gate_mod.gated(Outcome(COMPLETE, value=dict(left), seconds=4.0), run, data, X_hold, y_hold, 1e-5, 200,
                          None, 30.0, 0.0)
    assert done.status == COMPLETE and done.value["parity"]["passed"]
    assert done.value["pid"] != os.getpid() and limits == [26.0]
    assert done.seconds > 4.0

    def slow(conn, *a):
        import time

        time.sleep(5)

    monkeypatch.setattr(gate_mod, "gate", slow)
    late = gate_mod.gated(Outcome(COMPLETE, value=dict(left), seconds=29.9), supervise, data, X_hold, y_hold, 1e-5,
                          200, None, 30.0, 0.0)
    assert late.status == TIMEOUT and late.error.startswith("parity gate:")
    floor = gate_mod.gate_floor_s(left["model"])
    assert floor == pytest.approx(gate_mod.MIN_GATE_S + gate_mod.GATE_S_PER_MB * len(left["model"]) / 1e6)
    assert late.seconds >= 29.9 + floor


def test_a_large_graphs_gate_gets_time_for_its_size_whatever_the_refit_left():
    """A refit that used up its attempt's limit leaves its gate gate_floor_s: a 19 MB forest's gate took 1.1-2.0 s,
    which a flat 0.5 s stopped after the refit had passed (a linear model then shipped)."""
    limits: list[float] = []

    def run(fn, args, *, timeout_s, memory_mb):
        limits.append(timeout_s)
        return Outcome(COMPLETE, value={"timings": {}}, seconds=1.5)

    big = {"model": b"x" * 19_000_000, "gate": object()}
    gate_mod.gated(Outcome(COMPLETE, value=big, seconds=30.0), run, None, None, np.zeros(0), 1e-5, 200, None, 30.0, 0.0)
    assert limits[-1] == pytest.approx(0.5 + 0.09 * 19) and limits[-1] >= 2.0
    small = {"model": b"x" * 100_000, "gate": object()}
    gate_mod.gated(Outcome(COMPLETE, value=small, seconds=30.0), run, None, None, np.zeros(0), 1e-5, 200, None, 30.0,
                   0.0)
    assert limits[-1] == pytest.approx(0.509)
    gate_mod.gated(Outcome(COMPLETE, value=big, seconds=4.0), run, None, None, np.zeros(0), 1e-5, 200, None, 30.0, 0.0)
    assert limits[-1] == pytest.approx(26.0)  # room left: the attempt's limit less the refit's seconds


def test_the_gate_runs_onnx_checker_the_refit_apart_left_to_it(monkeypatch):
    """Apart, the refit's process skips onnx's checker (its parse of the graph was that process's peak for a large
    CatBoost) and the gate's process runs it on both graphs before any session: a graph the checker refuses
    ends the attempt there."""
    import onnx

    data, X_hold, y_hold, classes = _data("binary")
    checked: list[int] = []
    real = onnx.checker.check_model
    with monkeypatch.context() as m:
        m.setattr(onnx.checker, "check_model", lambda model, *a, **k: checked.append(1) or real(model, *a, **k))
        left = refit_export(None, data, [(FOREST, 1.0)], X_hold, y_hold, classes, {}, 1e-5, 200, refit_full=True,
                            extras=Extras(gate_apart=True))
        assert checked == []
        done = gate_mod.gated(Outcome(COMPLETE, value=left, seconds=0.1), _in_process, data, X_hold, y_hold, 1e-5,
                              200, None, 10.0, 0.0)
        assert done.status == COMPLETE and len(checked) == 2 and "check_s" in done.value["timings"]
    bad = onnx.load_from_string(left["model"])
    bad.ir_version = 0  # the checker refuses an unset IR version; onnxruntime's parity check never sees it
    left["model"] = bad.SerializeToString()
    with pytest.raises(onnx.checker.ValidationError):
        gate_mod.gate(None, data, X_hold, y_hold, left["model"], left["holdout_graph"], left["gate"], 1e-5, 200, None)
