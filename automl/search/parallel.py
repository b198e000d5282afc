"""N workers on one study on this machine (Optuna's shared-storage model): N-1 forked processes plus
this one, each running automl/search/loop.py with its own sampler seed."""
from __future__ import annotations

import os
import signal
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from automl.search.budget import Budget
from automl.search.loop import SearchResult, TrialCallback, run_search
from automl.search.objective import SearchData
from automl.search.supervisor import freeze_heap, request_stop, thaw_heap


def run_workers(n_workers: int, make: Callable[..., Any], data: SearchData, budget: Budget,
                oof_dir: Path | None, on_trial: TrialCallback | None, tickets: bool = False, *,
                on_worker_trial: TrialCallback | None) -> SearchResult:
    """`make(seed_offset=w)` opens worker w's handle on the study; the journal file (or the database)
    keeps trial numbers unique across processes. `on_trial` reports this process's trials (the live
    display), `on_worker_trial` the forked workers' (a plain log line: the display lives here)."""
    pids = []
    for w in range(1, n_workers):
        freeze_heap()
        pid = os.fork()
        if pid:
            thaw_heap()
        else:  # worker
            for sig in (signal.SIGTERM, signal.SIGINT):  # stop between storage writes, never inside one
                signal.signal(sig, request_stop)
            code = 0
            try:
                run_search(make(seed_offset=w), data, budget, on_trial=on_worker_trial, oof_dir=oof_dir,
                           tickets=tickets)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        pids.append(pid)
    try:
        res = run_search(make(seed_offset=0), data, budget, on_trial=on_trial, oof_dir=oof_dir,
                         tickets=tickets, forward_stop_to=pids)
    except BaseException:
        # SIGTERM reaches the driver only (run_search passes a signal on as it lands; this covers an
        # error): each worker ends its running trial as INTERRUPTED, the study holds nothing RUNNING
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        raise
    finally:
        for pid in pids:
            with suppress(ChildProcessError):
                os.waitpid(pid, 0)
    return res
