"""The final refit's checkpoint: the model the holdout scored, ready to gate, kept by the parent while the refit
on all rows (export.refit_full) runs.

The refit's process fits the plan on the search rows, scores the holdout and exports that model before it
refits on all rows. It sends the exported graph then, with what the gate needs of it (automl/stages/gate.py),
so that a refit on all rows stopped by the attempt's time or memory limit still ships the model the holdout
scored, without fitting it again. Without it the attempt failed whole and the ladder fell to a model several
ranks down (a LightGBM whose refit stopped at 1.6 s was followed by a linear model 12% worse: benchmarks/RESULTS.md,
session 50). The graph's bytes cross the pipe once: the finished refit's value names the checkpoint instead of
carrying them again.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from automl.search.supervisor import COMPLETE, FAIL, INTERRUPTED, Outcome

log = logging.getLogger("automl")

MESSAGE = "checkpoint"  # the message's kind, and what the finished value's `holdout_graph` says it was sent as


def send(conn: Any, value: dict[str, Any]) -> str:
    """In the refit's process: `value` (a gate-ready result of the model the holdout scored: its `model` bytes
    and `gate`) to the parent. Returns what the finished value's `holdout_graph` is then set to."""
    conn.send((MESSAGE, value))
    return MESSAGE


class Checkpoint:
    """In the parent: the `on_message` of the refit's supervisor, and what it kept once the refit has ended."""

    def __init__(self) -> None:
        self.value: dict[str, Any] | None = None

    def __call__(self, msg: Any) -> None:
        if isinstance(msg, tuple) and msg and msg[0] == MESSAGE:
            self.value = msg[1]
        return None  # no reply: the refit goes on at once

    def settle(self, outcome: Outcome) -> Outcome:
        """The refit's outcome, completed by the checkpoint: a finished refit gets its holdout graph back; one
        stopped after the checkpoint (time, memory, a crash or an error on all rows) completes with the model
        the holdout scored, `refit_full_stopped` saying why. A stopped run (INTERRUPTED) stays stopped."""
        kept, self.value = self.value, None
        if kept is None:
            return outcome
        if outcome.status == COMPLETE:
            value = outcome.value
            if isinstance(value, dict) and value.get("holdout_graph") == MESSAGE:
                value["holdout_graph"] = kept["model"]
            return outcome
        if outcome.status == INTERRUPTED:
            return outcome
        why = f"{outcome.status}: {outcome.error}" if outcome.status != FAIL else f"failed: {outcome.error}"
        log.warning("the refit on all rows stopped (%s): the model the holdout scored goes to the gate", why)
        return replace(outcome, status=COMPLETE, value={**kept, "refit_full_stopped": why}, error="")
