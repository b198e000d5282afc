"""How the pytest-xdist workers share the machine (the README's test command runs `-n 2 --dist loadgroup`).

Each worker runs on its own share of the cores (its CPU affinity; the engine plans its search workers and
threads for the cores it may use, automl/cores.py), so two workers' runs never ask for more threads than
there are cores: OpenMP teams of two threads each, waiting for a core the other worker's test holds, made
runs several times slower (benchmarks/RESULTS.md, session 40).

Every test runs holding a shared lock (tests/conftest.py, pytest_runtest_protocol). A test whose assertion
measures its own wall time against a budget runs `alone()`: it takes the lock exclusively, so the other
worker finishes its current test and starts no new one until it is done, and the time it measures is not
the other worker's CPU load; it runs on all the cores, as a user's run would. A turnstile lock keeps the
waiting exclusive taker from being starved by a stream of shared takers. Without xdist (`python -m pytest
tests/unit/test_x.py`) there is one process, on every core, and nothing is locked.

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
_all_cores: set[int] = set()
_own_cores: set[int] = set()


def configure(basetemp: str | None) -> None:
    """On an xdist worker: the folder all the workers of this run share (the controller's basetemp), and
    this worker's share of the cores (every n-th of them, from its index), where each gets at least one."""
    global _dir, _all_cores, _own_cores
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not (worker and basetemp):
        return
    _dir = Path(basetemp).parent
    n = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    _all_cores = set(os.sched_getaffinity(0))
    if 1 < n <= len(_all_cores):
        _own_cores = set(sorted(_all_cores)[int(worker.removeprefix("gw")) % n::n])
        os.sched_setaffinity(0, _own_cores)


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
    if _own_cores:
        os.sched_setaffinity(0, _all_cores)
    try:
        yield
    finally:
        if _own_cores:
            os.sched_setaffinity(0, _own_cores)
        fcntl.flock(_fd("machine"), fcntl.LOCK_SH if was_held else fcntl.LOCK_UN)
        _held = was_held
        fcntl.flock(_fd("turnstile"), fcntl.LOCK_UN)
