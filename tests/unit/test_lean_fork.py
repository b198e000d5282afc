"""The lean fork runs one step in a child forked early: its result or its exception comes back to the
driver, a child that dies is told as such, and an unused child ends at once (automl/lean_fork.py)."""
from __future__ import annotations

import os
import time

import pytest

from automl.lean_fork import HandoffError, LeanFork, NotHandedOver

PREPARED: list[str] = []


def _prepare() -> None:
    PREPARED.append(f"prepared in {os.getpid()}")


def _prepared() -> tuple[int, list[str]]:
    return os.getpid(), list(PREPARED)


def _fails() -> None:
    raise ValueError("column 'x': bad")


class _Unpicklable(Exception):
    def __init__(self, a: int, b: int) -> None:  # pickle rebuilds it with one argument: fails
        super().__init__(f"{a}/{b}")


def _fails_unpicklably() -> None:
    raise _Unpicklable(1, 2)


def test_the_step_runs_in_the_child_after_its_preparation():
    fork = LeanFork.start(_prepare)
    pid, prepared = fork.call(fork.pack(_prepared))
    assert pid == fork.pid != os.getpid()
    assert prepared == [f"prepared in {pid}"]
    assert PREPARED == []  # the driver did not prepare anything itself
    with pytest.raises(ProcessLookupError):  # reaped after answering
        os.kill(fork.pid, 0)


def test_the_steps_exception_is_raised_in_the_driver():
    with pytest.raises(ValueError, match="column 'x': bad"):
        (f := LeanFork.start(_prepare)).call(f.pack(_fails))
    with pytest.raises(RuntimeError, match="_Unpicklable: 1/2"):
        (f := LeanFork.start(_prepare)).call(f.pack(_fails_unpicklably))


def test_a_child_that_dies_without_answering_is_a_handoff_error():
    with pytest.raises(HandoffError, match="exit 3"):
        (f := LeanFork.start(_prepare)).call(f.pack(os._exit, 3))


def test_an_unused_child_ends_at_once_even_while_preparing():
    fork = LeanFork.start(lambda: time.sleep(30))
    t = time.time()
    fork.close()
    assert time.time() - t < 2.0
    with pytest.raises(ProcessLookupError):
        os.kill(fork.pid, 0)
    fork.close()  # twice is harmless


def test_a_child_that_died_before_the_handover_is_not_alive():
    fork = LeanFork.start(lambda: os._exit(0))
    deadline = time.time() + 10
    while fork.alive() and time.time() < deadline:
        time.sleep(0.05)
    assert not fork.alive()  # the run then finishes in the driver (automl/run.py)
    live = LeanFork.start(_prepare)
    assert live.alive()
    live.close()
    assert not live.alive()


def test_inputs_that_do_not_pickle_are_not_handed_over():
    fork = LeanFork.start(_prepare)
    with pytest.raises(NotHandedOver, match="pickle"):
        fork.pack(_prepared, lambda: None)
    assert not fork.alive()  # ended: the driver runs the step itself
