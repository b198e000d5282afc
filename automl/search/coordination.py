"""Many workers on one study: an exact trial count, heartbeats, dead workers' trials retried once.

Optuna's shared-storage model: identical workers on one storage, no coordinator. What this adds:

- **Exact trial count.** With `budget.n_trials = N` the driver enqueues N tickets (WAITING trials; the
  warm-start configurations first, then empty ones the sampler fills in). A worker only runs a trial it
  claimed by popping a ticket, and popping is Optuna's atomic WAITING -> RUNNING transition (a row
  update in PostgreSQL, a locked append in the journal). N tickets, N trials, whatever the number of
  workers. A trial skipped for time, or a dead worker's trial, gets a replacement ticket.
- **Dead workers.** Database storage: a heartbeat thread beats while a trial runs; before each claim,
  `fail_stale_trials` fails trials whose beat is older than the grace period and the retry callback
  re-enqueues each once. Journal storage has no heartbeats: a trial records host and pid, and a worker
  on the same host fails RUNNING trials whose process is gone and retries them once the same way.
- **Joining.** The driver publishes in the study's user attrs everything another process needs to
  rebuild the search data exactly (config, data sha, a fingerprint of rows, folds and spaces) and the
  absolute deadline.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from automl.errors import UserError
from automl.search import optuna_compat as oc
from automl.search.budget import Budget, margin
from automl.urls import is_url, redact

log = logging.getLogger("automl")
SPEC_ATTR = "worker_spec"
PHASE_ATTR = "phase"  # "search" while workers may claim trials, then "final"


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def enqueue_tickets(study: Any, n: int) -> int:
    """Top the queue up to n WAITING trials (the warm start's are already there). Returns the count."""
    from optuna.trial import TrialState

    waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    for _ in range(max(0, n - waiting)):
        study.enqueue_trial({}, user_attrs={"origin": "sampler"}, skip_if_exists=False)
    if waiting > n:
        log.warning("%d queued trials from an earlier run exceed budget.n_trials=%d; all of them run", waiting, n)
    return max(n, waiting)


def claim(study: Any) -> Any | None:
    """Pop one ticket (WAITING -> RUNNING, atomic in every storage) as a Trial, or None if none is left.

    This is `Study.ask` without its fallback of creating a new trial, which would overshoot the count."""
    return oc.pop_waiting_trial(study)


def ask(study: Any) -> Any:
    """study.ask() without Optuna's warning that heartbeats are meant for optimize(): this loop beats itself.
    A queued retry of a trial whose process died runs first: Optuna pops queued trials oldest first, and
    on a resume the retry was queued behind what was left of the warm start, so it ran late or never."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        retry = _pop_retry(study)
        return retry if retry is not None else study.ask()


def _pop_retry(study: Any) -> Any | None:
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        if "retry_of" not in t.user_attrs:
            continue
        trial = oc.start_waiting_trial(study, t)  # None: another worker claimed it first
        if trial is not None:
            return trial
    return None


def mark_claimed(trial: Any) -> None:
    trial.set_user_attr("worker", worker_id())


class Heartbeat:
    """Record a heartbeat for a running trial every interval seconds (database storage only)."""
    def __init__(self, study: Any, trial: Any | None) -> None:
        self.study = study
        self.trial = trial
        self.enabled = trial is not None and oc.heartbeat_enabled(study)
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None

    def _beat(self) -> None:
        trial = self.trial
        assert trial is not None  # started only when enabled, which needs a trial
        interval = oc.heartbeat_interval(self.study) or 10
        while not self._stop.wait(interval):
            try:
                oc.record_heartbeat(self.study, trial)
            except Exception as e:  # a lost connection: the trial may be failed as stale by others
                log.warning("heartbeat of trial id %d failed: %s", oc.trial_id(trial), e)

    def start(self) -> Heartbeat:
        if self.enabled:
            assert self.trial is not None  # enabled needs a trial
            oc.record_heartbeat(self.study, self.trial)
            self.thread = threading.Thread(target=self._beat, daemon=True)
            self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
            self.thread = None


def fail_dead(study: Any) -> list[int]:
    """Fail the RUNNING trials of workers that died, and retry each once. Returns their numbers.

    Database storage: Optuna's heartbeat check. Journal: trials claimed on this host by a pid that no
    longer exists (a worker on another host cannot be checked; use a database for several hosts)."""
    if oc.heartbeat_enabled(study):
        import optuna
        from optuna.trial import TrialState

        before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        after = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        return sorted(before - after)  # failed as stale here, or finished meanwhile (harmless in a log line)
    return _fail_dead_local(study)


def _fail_dead_local(study: Any) -> list[int]:
    from optuna.trial import TrialState

    host = socket.gethostname()
    dead = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        w_host, _, pid = str(t.user_attrs.get("worker", "")).rpartition(":")
        if w_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        if not oc.fail_trial(study, t, {"error": f"worker {t.user_attrs['worker']} died"}):
            continue  # another worker failed it first
        oc.retry_callback(max_retry=1)(study, oc.fresh_trial(study, t))
        dead.append(t.number)
    return dead


def _alive(pid: int) -> bool:
    """A killed worker stays a zombie until its parent reaps it (forked local workers): that is dead too."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def running(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def fingerprint(data: Any) -> str:
    """What a joining worker must reproduce exactly: rows, columns, target, folds, families, spaces."""
    import pandas as pd

    h = hashlib.sha256()
    h.update(pd.util.hash_pandas_object(data.X, index=False).to_numpy().tobytes())
    h.update(json.dumps(list(map(str, data.X.columns))).encode())
    h.update(data.y.tobytes())
    for tr, va in data.folds:
        h.update(tr.tobytes())
        h.update(va.tobytes())
    h.update(json.dumps([data.task, data.metric.name, data.n_classes, data.seed, data.families]).encode())
    h.update(repr(sorted(data.spaces.items())).encode())
    return h.hexdigest()


def publish(study: Any, config: Any, data: Any, data_sha: str, budget: Budget, tickets: int,
            run_dir: str) -> None:
    """Everything a joining worker needs, in the study's user attrs."""
    conf = json.loads(json.dumps(dataclasses.asdict(config), default=lambda o: getattr(o, "value", str(o))))
    conf["data"]["path"] = redact(conf["data"]["path"])  # a database URL's password stays in this process
    spec = {
        "config": conf,
        "data_sha256": data_sha, "task": data.task, "metric": data.metric.name, "n_folds": len(data.folds),
        "fingerprint": fingerprint(data), "deadline": budget.deadline, "time_s": budget.time_s,
        "tickets": tickets, "run_dir": run_dir, "driver": worker_id(),
    }
    study.set_user_attr(SPEC_ATTR, spec)
    study.set_user_attr(PHASE_ATTR, "search")


def searching(study: Any) -> bool:
    """False once the driver has moved on to refit and export (workers then stop claiming)."""
    try:
        return study.user_attrs.get(PHASE_ATTR, "search") == "search"
    except Exception:
        return True


def finish_search(study: Any, budget: Budget, poll_s: float = 0.5) -> int:
    """Driver, after its own worker loop: wait for trials other workers still run (failing dead ones),
    until none runs or the time left is only what the refit needs. Then close the search phase.
    Returns the number of trials still running when it stopped waiting."""
    while running(study) and budget.left() > margin(budget):
        fail_dead(study)
        time.sleep(poll_s)
    study.set_user_attr(PHASE_ATTR, "final")
    return running(study)


def check_owner(study: Any, storage: str, run_dir: str) -> None:
    """A database holds many studies: a study name already used by another run folder is an error,
    not a silent resume of someone else's search (the journal lives in its run folder, so it cannot clash)."""
    spec = study.user_attrs.get(SPEC_ATTR) or {}
    owner = spec.get("run_dir")
    if is_url(storage) and owner and Path(owner).resolve() != Path(run_dir).resolve():
        raise UserError("search.study_name", f"study '{study.study_name}' in {redact(storage)} belongs to the run "
                        f"folder {owner}",
                        f"Set search.study_name to a new name, or hydra.run.dir={owner} to resume it.")


def join_command(storage: str, study_name: str, journal: str) -> str:
    return f"automl worker --storage {redact(storage) if is_url(storage) else journal} --study {study_name}"
