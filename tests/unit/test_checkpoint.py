"""The final refit's checkpoint (automl/stages/checkpoint.py): a refit on all rows stopped after the model the
holdout scored was exported ships that model, gated, instead of failing the whole attempt."""
from __future__ import annotations

import os
import signal
import time

import pytest

from automl.search.supervisor import COMPLETE, CRASHED, FAIL, INTERRUPTED, MEMOUT, TIMEOUT, Outcome, supervise
from automl.stages import checkpoint
from automl.stages import gate as gate_mod
from automl.stages.checkpoint import Checkpoint
from automl.stages.refit import Extras, refit_export
from tests.unit.test_gate_apart import FOREST, MODELS, _data, _unnamed


def _kept(value: dict) -> Checkpoint:
    kept = Checkpoint()
    assert kept(("fold", 0, 0.5)) is None and kept.value is None  # other messages are not its business
    assert kept((checkpoint.MESSAGE, value)) is None  # no reply: the refit goes on at once
    return kept


@pytest.mark.parametrize("status", [TIMEOUT, MEMOUT, CRASHED, FAIL])
def test_a_refit_stopped_after_its_checkpoint_completes_with_the_model_the_holdout_scored(status):
    kept = _kept({"model": b"graph", "gate": "pending", "holdout_score": 0.8})
    out = kept.settle(Outcome(status, None, "exceeded its time limit of 1.6s", seconds=1.6, peak_rss_mb=90.0))
    assert out.status == COMPLETE and out.error == "" and out.seconds == 1.6 and out.peak_rss_mb == 90.0
    assert out.value["model"] == b"graph" and out.value["gate"] == "pending" and out.value["holdout_score"] == 0.8
    assert "exceeded its time limit of 1.6s" in out.value["refit_full_stopped"]
    assert kept.value is None  # one attempt's checkpoint is never another's


def test_a_finished_refit_gets_its_holdout_graph_back_and_a_stopped_run_stays_stopped():
    kept = _kept({"model": b"holdout graph"})
    done = kept.settle(Outcome(COMPLETE, {"model": b"full graph", "holdout_graph": checkpoint.MESSAGE}))
    assert done.value == {"model": b"full graph", "holdout_graph": b"holdout graph"}
    assert _kept({"model": b"g"}).settle(Outcome(INTERRUPTED, None, "stopped")).status == INTERRUPTED
    assert Checkpoint().settle(Outcome(TIMEOUT, None, "late")).status == TIMEOUT  # nothing was sent


class _StopsAfterCheckpoint:
    """The refit's pipe: once the checkpoint is sent, the refit on all rows never ends (`how`: hangs or dies)."""

    def __init__(self, conn, how: str):
        self.conn, self.how = conn, how

    def send(self, msg):
        self.conn.send(msg)
        if msg[0] == checkpoint.MESSAGE:
            if self.how == "hang":
                time.sleep(120)
            os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize("task", ["binary", "regression"])
@pytest.mark.parametrize("how", ["hang", "die"])
def test_a_real_refit_stopped_on_all_rows_ships_the_gated_model_the_holdout_scored(task, how):
    """The real supervisor, refit and gate: the checkpoint crosses the pipe, the child is stopped (its time limit)
    or dies in its refit on all rows, and what ships is the model a refit without export.refit_full ships,
    parity-gated in its own process, its holdout scored through onnxruntime."""
    data, X_hold, y_hold, classes = _data(task)
    args = (data, [(FOREST, 1.0)], X_hold, y_hold, classes, {}, 1e-5, 200)
    t = time.perf_counter()
    plain = refit_export(None, *args, refit_full=False)
    limit = 3 * (time.perf_counter() - t) + 5.0
    kept = Checkpoint()
    out = supervise(lambda conn, *a, **k: refit_export(_StopsAfterCheckpoint(conn, how), *a, **k),
                    (*args, 0.0, True, 0.0, None, Extras(gate_apart=True, checkpoint=True)), timeout_s=limit,
                    memory_mb=0.0, on_message=kept)
    assert out.status == (TIMEOUT if how == "hang" else CRASHED)
    done = gate_mod.gated(kept.settle(out), supervise, data, X_hold, y_hold, 1e-5, 200, None, limit, 0.0)
    got = done.value
    assert done.status == COMPLETE and got["parity"]["passed"], done
    assert _unnamed(got["model"]) == _unnamed(plain["model"])
    assert "refit_full_rows" not in got and (TIMEOUT if how == "hang" else CRASHED) in got["refit_full_stopped"]
    assert got["holdout_score"] == plain["holdout_score"]
    assert got["holdout_score_onnx"] == pytest.approx(plain["holdout_score_onnx"], rel=1e-9)
    assert got["estimators"] == plain["estimators"] and "checkpoint_s" in got["timings"]


def test_a_refit_that_finishes_sends_the_holdout_graph_once_and_ships_as_before():
    data, X_hold, y_hold, classes = _data("multiclass")
    args = (data, MODELS["ensemble"], X_hold, y_hold, classes, {}, 1e-5, 200, 0.0, True)
    before = refit_export(None, *args, extras=Extras(gate_apart=True))
    kept = Checkpoint()
    out = supervise(refit_export, (*args, 0.0, None, Extras(gate_apart=True, checkpoint=True)), timeout_s=120.0,
                    memory_mb=0.0, on_message=kept)
    assert out.status == COMPLETE and out.value["holdout_graph"] == checkpoint.MESSAGE  # not its bytes again
    settled = kept.settle(out)
    assert _unnamed(settled.value["holdout_graph"]) == _unnamed(before["holdout_graph"])
    done = gate_mod.gated(settled, supervise, data, X_hold, y_hold, 1e-5, 200, None, 120.0, 0.0)
    assert done.status == COMPLETE and done.value["parity"]["passed"]
    assert _unnamed(done.value["model"]) == _unnamed(before["model"])
    assert done.value["refit_full_rows"] == len(data.y) + len(y_hold) and "refit_full_stopped" not in done.value
