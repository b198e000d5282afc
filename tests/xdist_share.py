"""How the pytest-xdist workers share the machine (the README's test command runs `-n 2 --dist loadgroup`).

Every test runs holding a shared lock (tests/conftest.py, pytest_runtest_protocol). A test whose assertion
measures its own wall time against a budget runs `alone()`: it takes the lock exclusively, so the other
worker finishes its current test and starts no new one until it is done, and the time it measures is not
the other worker's CPU load. A turnstile lock keeps the waiting exclusive taker from being starved by a
stream of shared takers. Without xdist (`python -m pytest tests/unit/test_x.py`) there is one process and
nothing is locked.

The lock files live in the controller's basetemp (the parent of each worker's), removed with it by pytest.
"""
from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_dir: Path | None = None
_fds: dict[str, int] = {}
_held = False  # this worker holds the machine lock shared (inside a test)


def configure(basetemp: str | None) -> None:
    """On an xdist worker: the folder all the workers of this run share (the controller's basetemp)."""
    global _dir
    if os.environ.get("PYTEST_XDIST_WORKER") and basetemp:
        _dir = Path(basetemp).parent


def _fd(name: str) -> int:
    if name not in _fds:
        assert _dir is not None
        _fds[name] = os.open(_dir / f"automl-xdist.{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    return _fds[name]


@contextmanager
def shared() -> Iterator[None]:
    """Hold the machine beside the other worker's tests (every test, unless it runs alone)."""
    global _held
    if _dir is None:
        yield
        return
    fcntl.flock(_fd("turnstile"), fcntl.LOCK_EX)  # waits while a test that runs alone waits or runs
    fcntl.flock(_fd("machine"), fcntl.LOCK_SH)
    fcntl.flock(_fd("turnstile"), fcntl.LOCK_UN)
    _held = True
    try:
        yield
    finally:
        _held = False
        fcntl.flock(_fd("machine"), fcntl.LOCK_UN)


@contextmanager
def alone() -> Iterator[None]:
    """Hold the machine alone: a whole test (@pytest.mark.alone) or a part of one (a fixture that times a run).
    Inside a test the shared hold is given up first (else two workers' alone() would wait on each other)
    and taken back after."""
    global _held
    if _dir is None:
        yield
        return
    was_held = _held
    fcntl.flock(_fd("machine"), fcntl.LOCK_UN)
    _held = False
    fcntl.flock(_fd("turnstile"), fcntl.LOCK_EX)
    fcntl.flock(_fd("machine"), fcntl.LOCK_EX)  # once the other worker's current test has ended
    try:
        yield
    finally:
        fcntl.flock(_fd("machine"), fcntl.LOCK_SH if was_held else fcntl.LOCK_UN)
        _held = was_held
        fcntl.flock(_fd("turnstile"), fcntl.LOCK_UN)
