"""A supervised trial ends in exactly one status, and a misbehaving trial costs only itself."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np
import psutil

from automl.search.supervisor import CRASHED, FAIL, MEMOUT, PRUNED, TIMEOUT, Pruned, supervise


def _double(conn, x):
    return {"twice": x * 2}


def _raise(conn):
    raise ValueError("boom")


def _sleep(conn):
    time.sleep(60)


def _segv(conn):
    os.kill(os.getpid(), signal.SIGSEGV)


def _exit3(conn):
    os._exit(3)


def _hog(conn):
    keep = np.ones(60_000_000)  # 480 MB, every page touched, and kept
    time.sleep(30)
    return float(keep.sum())


def _light(conn):
    time.sleep(0.5)
    return "ok"


def _uses_100mb(conn):
    keep = np.ones(13_000_000)  # ~100 MB, held while the supervisor samples memory
    time.sleep(1.0)
    return float(keep[0])


def _talk(conn):
    conn.send(("fold", 0, 0.5))
    return conn.recv()


def _pruned(conn):
    conn.send(("fold", 0, 0.1))
    if conn.recv() == "prune":
        raise Pruned()
    return "not pruned"


def _spawn_and_hang(conn):
    p = subprocess.Popen(["sleep", "60"])
    conn.send(("pid", p.pid))
    time.sleep(60)


def test_complete_returns_the_value():
    out = supervise(_double, (21,), timeout_s=10, memory_mb=0)
    assert out.status == "COMPLETE" and out.value == {"twice": 42} and out.error == ""
    assert 0 < out.seconds < 10


def test_an_exception_is_a_fail_with_type_message_and_traceback():
    out = supervise(_raise, (), timeout_s=10, memory_mb=0)
    assert out.status == FAIL
    assert out.error == "ValueError: boom"
    assert "_raise" in out.value["traceback"] and "ValueError" in out.value["traceback"]


def test_a_hanging_trial_times_out_promptly():
    t = time.monotonic()
    out = supervise(_sleep, (), timeout_s=1.0, memory_mb=0)
    elapsed = time.monotonic() - t
    assert out.status == TIMEOUT and "1.0s" in out.error
    assert 1.0 <= elapsed < 4.0, elapsed


def test_timeout_kills_the_whole_process_group():
    pids: list[int] = []
    out = supervise(_spawn_and_hang, (), timeout_s=1.5, memory_mb=0, on_message=lambda m: pids.append(m[1]))
    assert out.status == TIMEOUT and len(pids) == 1
    time.sleep(0.3)
    try:
        alive = psutil.Process(pids[0]).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        alive = False
    assert not alive, "the trial's own child process outlived the trial"


def test_a_segfault_is_crashed_and_named():
    out = supervise(_segv, (), timeout_s=10, memory_mb=0)
    assert out.status == CRASHED and "SIGSEGV" in out.error


def test_an_abrupt_exit_is_crashed_with_its_code():
    out = supervise(_exit3, (), timeout_s=10, memory_mb=0)
    assert out.status == CRASHED and "exit code 3" in out.error


def test_memory_over_the_limit_is_memout():
    t = time.monotonic()
    out = supervise(_hog, (), timeout_s=20, memory_mb=200)
    assert out.status == MEMOUT, (out.status, out.error)
    assert out.peak_rss_mb > 200 and "200 MB" in out.error
    assert time.monotonic() - t < 10  # killed when it crossed the line, not at the time limit


def test_the_limit_counts_the_trials_own_memory_not_the_parents():
    """A forked child shares the parent's heap copy-on-write; only what the trial itself uses may count.
    Here the parent holds 320 MB (as the driver holds the data), the trial sleeps and allocates nothing."""
    ballast = np.ones(40_000_000)  # touched: resident in the parent
    out = supervise(_light, (), timeout_s=20, memory_mb=200)
    assert ballast[0] == 1.0
    assert out.status == "COMPLETE" and out.value == "ok", (out.status, out.error)


def test_peak_memory_is_reported_for_a_completed_trial():
    out = supervise(_uses_100mb, (), timeout_s=20, memory_mb=2000)
    assert out.status == "COMPLETE"
    assert out.peak_rss_mb > 90, f"peak_rss_mb={out.peak_rss_mb}: the sampled peak is lost when the trial completes"


def test_messages_reach_the_parent_and_back():
    seen = []

    def on_message(m):
        seen.append(m)
        return f"got {m[2]}"

    out = supervise(_talk, (), timeout_s=10, memory_mb=0, on_message=on_message)
    assert out.value == "got 0.5" and seen == [("fold", 0, 0.5)]


def test_a_prune_answer_ends_the_trial_as_pruned():
    assert supervise(_pruned, (), timeout_s=10, memory_mb=0, on_message=lambda m: "prune").status == PRUNED
    assert supervise(_pruned, (), timeout_s=10, memory_mb=0, on_message=lambda m: "go").value == "not pruned"


def test_a_trial_killed_inside_the_stop_handler_dies_at_once_and_stops_no_worker(monkeypatch):
    """The trial is forked while the search's stop handler is installed (stop_at_safe_points). Killed
    for its time, it must die on SIGTERM: not set a stop flag of its own and wait for SIGKILL, and
    not pass the SIGTERM on to the forked workers, which would end their search too."""
    from automl.search import supervisor
    from automl.search.supervisor import stop_at_safe_points

    monkeypatch.setitem(supervisor._stop, "requested", False)
    worker = subprocess.Popen(["sleep", "30"])  # stands in for a forked worker
    try:
        with stop_at_safe_points(forward_to=[worker.pid]):
            out = supervise(_sleep, (), timeout_s=0.5, memory_mb=0)
        assert out.status == TIMEOUT
        assert out.seconds < 1.3, f"{out.seconds:.2f}s: the trial outlived SIGTERM until SIGKILL"
        assert worker.poll() is None, "the killed trial passed SIGTERM on to a worker"
        assert not supervisor.stop_requested()
    finally:
        worker.kill()
        worker.wait()


def test_memory_between_exact_counts_follows_rss_and_an_estimate_over_the_limit_is_counted_at_once():
    """The supervisor sees an allocation at the next 50 ms tick (RSS grown since the last exact USS count),
    not only at the next exact count, and stops a trial only on an exact count."""
    import os

    from automl.search.supervisor import TreeMemory

    memory = TreeMemory(os.getpid())
    before = memory.exact(now=0.0)
    block = np.ones(100 * 2**20 // 8)  # 100 MB, every page written
    estimate, exact = memory.count(now=0.01, limit_mb=1e9)
    assert not exact and 90 < estimate - before < 110
    uss, exact = memory.count(now=0.02, limit_mb=estimate - 1)  # over the limit: counted exactly, now
    assert exact and abs(uss - estimate) < 20
    _, exact = memory.count(now=0.02 + TreeMemory.EXACT_EVERY_S, limit_mb=1e9)  # due
    assert exact
    del block
