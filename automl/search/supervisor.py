"""Run a function in a supervised child process: its own process group, a wall-clock limit, a memory limit.

The child is forked (it shares the parent's data copy-on-write, so starting it is cheap). It may
talk to the parent over a duplex pipe while it runs (per-fold scores out, prune decisions in).
A child that raises, segfaults, hangs in native code or allocates without bound costs only itself.
The parent never fits models itself, so no OpenMP thread pool exists in it when it forks.
"""
from __future__ import annotations

import gc
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

COMPLETE, FAIL, TIMEOUT, MEMOUT, CRASHED, PRUNED = "COMPLETE", "FAIL", "TIMEOUT", "MEMOUT", "CRASHED", "PRUNED"
INTERRUPTED = "INTERRUPTED"

# A stop requested by a signal handler. Workers stop this way instead of by an exception raised at an
# arbitrary bytecode, which could land inside a storage write and leave the journal lock behind.
_stop = {"requested": False}


def request_stop(*_: Any) -> None:
    """Signal-handler safe: the running supervised child is killed at the next poll (<= 50 ms)."""
    _stop["requested"] = True


def stop_requested() -> bool:
    return _stop["requested"]


@contextmanager
def stop_at_safe_points(forward_to: Sequence[int] = ()) -> Iterator[None]:
    """Within: SIGINT and SIGTERM request a stop (and are passed on to forward_to, the forked workers,
    which SIGTERM of the driver does not reach) instead of raising at whatever bytecode they land on.
    A KeyboardInterrupt raised inside `study.ask()` left the trial it had just created RUNNING forever.
    On a clean exit a requested stop raises KeyboardInterrupt, as the signal would have. A second
    signal raises at once: the way out if something does not reach a safe point."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers: main thread only
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if _stop["requested"]:
            raise KeyboardInterrupt(signal.Signals(signum).name)
        request_stop()
        for pid in forward_to:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            if h is not None:  # None: a handler not installed from Python, which cannot be restored
                signal.signal(s, h)
    if _stop["requested"]:
        raise KeyboardInterrupt("stop requested")


class Pruned(Exception):
    """Raised inside the child when the parent answers 'prune'."""


@dataclass
class Outcome:
    status: str
    value: Any = None
    error: str = ""
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    # where the time outside the child's own work went: starting it (fork), and from its last message to its exit
    start_s: float = 0.0
    reap_s: float = 0.0


def _die_with_parent(parent_pid: int) -> None:
    """Linux: SIGKILL this trial if the driver dies (kill -9 of the driver must not leave trials behind)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    if os.getppid() != parent_pid:  # the driver died before prctl took effect
        os._exit(1)


def _child_main(conn: Any, fn: Callable[..., Any], args: tuple[Any, ...], parent_pid: int) -> None:
    import faulthandler

    os.setpgid(0, 0)
    _die_with_parent(parent_pid)
    faulthandler.disable()  # a crash is reported by the parent as CRASHED, not as a dump on stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    # killed by the parent (time, memory, stop): die at once, never in a handler inherited from it,
    # which would request a stop here, or pass it on to the workers (stop_at_safe_points)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    code = 0
    try:
        conn.send(("done", fn(conn, *args)))
    except Pruned:
        conn.send(("pruned", None))
    except BaseException as e:  # the trial's failure is a result, reported to the parent
        tb = traceback.format_exc(limit=3)
        try:
            conn.send(("error", f"{type(e).__name__}: {e}".strip()[:2000], tb[-2000:]))
        except Exception:
            code = 1
    finally:
        conn.close()
        os._exit(code)


class TreeMemory:
    """The memory a trial's process tree owns (USS), counted exactly now and then and estimated cheaply between.

    USS is what the limit applies to: a forked child's RSS also counts the pages it still shares
    copy-on-write with the driver. An exact count walks every mapping's page table (smaps_rollup), too slow
    for every 50 ms tick of a large process; RSS costs one small read (statm). Between exact counts the
    estimate is the last USS plus the RSS grown since: new pages raise both alike, so a burst of allocations
    is seen at the next tick, and an estimate over the limit is checked by an exact count at once. Pages a
    write un-shares raise USS only and wait for the next exact count (every EXACT_EVERY_S)."""

    EXACT_EVERY_S = 0.25

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.procs: list[Any] = []
        self.uss_mb = self.rss_at_count_mb = 0.0
        self.next_exact = 0.0

    def _rss_mb(self) -> float:
        total = 0
        for p in self.procs:
            with suppress(Exception):
                total += p.memory_info().rss
        return total / 2**20

    def exact(self, now: float) -> float:
        import psutil

        try:
            root = psutil.Process(self.pid)
            self.procs = [root, *root.children(recursive=True)]
        except Exception:
            self.procs = []
        uss = 0
        for p in self.procs:
            with suppress(Exception):
                uss += p.memory_full_info().uss
        self.uss_mb, self.rss_at_count_mb = uss / 2**20, self._rss_mb()
        self.next_exact = now + self.EXACT_EVERY_S
        return self.uss_mb

    def count(self, now: float, limit_mb: float) -> tuple[float, bool]:
        """(USS in MB, whether that figure is an exact count): exact when due or when the estimate is over
        `limit_mb`, else the estimate."""
        if now >= self.next_exact:
            return self.exact(now), True
        estimate = self.uss_mb + self._rss_mb() - self.rss_at_count_mb
        if estimate > limit_mb:
            return self.exact(now), True
        return estimate, False


def _kill_group(proc: Any, grace_s: float = 1.0) -> None:
    """SIGTERM the child's process group, give it a grace period, then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        proc.join(grace_s)
        if not proc.is_alive():
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # grandchildren left in the group
            return


def freeze_heap() -> None:
    """Call right before a fork, and thaw_heap() right after it in the parent: every object this process holds
    leaves the cyclic collector's generations (gc.freeze) in the child only. A forked child that runs a full
    collection would otherwise write to the header of every object it tracks, copying each page of the parent's
    heap it shares into its own pages: its own memory (what a trial's limit counts, and what the whole tree
    adds up) then depends on when the collector happens to run in it (the report's child wrote about half as
    much with the freeze: benchmarks/RESULTS.md, session 39). Frozen objects are still freed by reference
    counting in the child; the parent's collector keeps them (thawed at once), so its cycles are still collected."""
    gc.freeze()


def thaw_heap() -> None:
    """In the parent, right after the fork freeze_heap preceded."""
    gc.unfreeze()


def supervise(fn: Callable[..., Any], args: tuple[Any, ...], *, timeout_s: float, memory_mb: float,
              on_message: Callable[[Any], Any] | None = None) -> Outcome:
    """Run fn(conn, *args) in a child. `on_message(msg)` handles the child's messages; its return
    value (if not None) is sent back. Returns how the child ended."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=True)
    proc = ctx.Process(target=_child_main, args=(child, fn, args, os.getpid()), daemon=False)
    freeze_heap()
    t0 = time.monotonic()
    try:
        proc.start()  # the child never returns here: it runs _child_main and exits
    finally:
        thaw_heap()
    started = time.monotonic()
    pid = proc.pid
    assert pid is not None  # start() has forked the child
    child.close()
    out = Outcome(status=CRASHED)
    deadline = t0 + timeout_s
    memory = TreeMemory(pid)
    peak = 0.0
    try:
        while True:
            now = time.monotonic()
            if _stop["requested"]:
                _kill_group(proc)
                out = Outcome(INTERRUPTED, error="interrupted: the run was stopped while this trial ran")
                break
            if now >= deadline:
                _kill_group(proc)
                out = Outcome(TIMEOUT, error=f"exceeded its time limit of {timeout_s:.1f}s")
                break
            if memory_mb > 0:
                uss, exact = memory.count(now, memory_mb)
                peak = max(peak, uss)
                if exact and uss > memory_mb:
                    _kill_group(proc)
                    out = Outcome(MEMOUT, error=f"used {uss:.0f} MB, over its limit of {memory_mb:.0f} MB",
                                  peak_rss_mb=uss)
                    break
            if parent.poll(min(0.05, max(deadline - now, 0.0))):
                try:
                    msg = parent.recv()
                except (EOFError, OSError):
                    msg = None
                if msg is None:
                    proc.join(1.0)
                    code = proc.exitcode
                    sig = -code if code is not None and code < 0 else 0
                    name = signal.Signals(sig).name if sig else f"exit code {code}"
                    out = Outcome(CRASHED, error=f"the trial process died ({name})")
                    break
                kind = msg[0]
                if kind == "done":
                    out = Outcome(COMPLETE, value=msg[1])
                    break
                if kind == "pruned":
                    out = Outcome(PRUNED, error="pruned on its running CV score")
                    break
                if kind == "error":
                    out = Outcome(FAIL, error=msg[1], value={"traceback": msg[2]})
                    break
                reply = on_message(msg) if on_message else None
                if reply is not None:
                    parent.send(reply)
            elif not proc.is_alive():
                proc.join(0.1)
                if parent.poll(0):
                    continue  # the final message arrived just before exit
                code = proc.exitcode
                sig = -code if code is not None and code < 0 else 0
                name = signal.Signals(sig).name if sig else f"exit code {code}"
                out = Outcome(CRASHED, error=f"the trial process died ({name})")
                break
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        ended = time.monotonic()
        parent.close()
        proc.join(2.0)
        if proc.is_alive():
            _kill_group(proc)
            proc.join(1.0)
    out.seconds = time.monotonic() - t0
    out.start_s, out.reap_s = started - t0, time.monotonic() - ended
    out.peak_rss_mb = max(out.peak_rss_mb, peak)
    return out
