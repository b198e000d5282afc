"""Every use of Optuna beyond its public API, one small function each (tests/unit/test_optuna_compat.py).

The search drives studies ask/tell from several processes, beats heartbeats itself and claims queued
trials without creating new ones; Optuna's public API covers none of that. An Optuna upgrade that
moves these internals breaks this module and its tests, nothing else. Optuna is imported inside the
functions: importing it costs about half a second, which a config error should not pay (cli.py).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial, Trial, TrialState


def trial_id(trial: Trial | FrozenTrial) -> int:
    """The storage's id of a trial (unique across studies; the trial number is unique within one)."""
    return trial._trial_id


def fresh_trial(study: optuna.Study, trial: Trial | FrozenTrial) -> FrozenTrial:
    """The trial as the storage holds it now (another process may have changed it)."""
    return study._storage.get_trial(trial._trial_id)


def trial_state(study: optuna.Study, trial: Trial | FrozenTrial) -> TrialState:
    return fresh_trial(study, trial).state


def start_waiting_trial(study: optuna.Study, waiting: FrozenTrial) -> Trial | None:
    """Claim one particular WAITING trial (WAITING -> RUNNING, atomic in every storage) as a Trial,
    or None when another process claimed or finished it first."""
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        if not study._storage.set_trial_state_values(waiting._trial_id, state=TrialState.RUNNING):
            return None
    except UpdateFinishedTrialError:
        return None
    study._thread_local.cached_all_trials = None  # as study.ask() does: read the storage afresh
    return optuna.Trial(study, waiting._trial_id)


def pop_waiting_trial(study: optuna.Study) -> Trial | None:
    """The oldest WAITING trial claimed as a Trial, or None if the queue is empty: `Study.ask` without
    its fallback of creating a new trial."""
    import optuna

    study._thread_local.cached_all_trials = None  # what ask() does: sync with the storage once per trial
    tid = study._pop_waiting_trial_id()
    return None if tid is None else optuna.Trial(study, tid)


def fail_trial(study: optuna.Study, trial: FrozenTrial, user_attrs: dict[str, Any]) -> bool:
    """Set a RUNNING trial's user attrs (the reason first: a finished trial takes none), then FAIL it.
    False when another process finished it first (only one transition wins)."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        for key, value in user_attrs.items():
            study._storage.set_trial_user_attr(trial._trial_id, key, value)
        return bool(study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL))
    except UpdateFinishedTrialError:
        return False


def heartbeat_enabled(study: optuna.Study) -> bool:
    """True for a database storage opened with a heartbeat interval (the journal has no heartbeats)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(study._storage)


def heartbeat_interval(study: optuna.Study) -> int | None:
    """The storage's heartbeat interval; None when it has none (the journal, or a database opened without)."""
    from optuna.storages._heartbeat import BaseHeartbeat

    storage = study._storage
    return storage.get_heartbeat_interval() if isinstance(storage, BaseHeartbeat) else None


def record_heartbeat(study: optuna.Study, trial: Trial | FrozenTrial) -> None:
    from optuna.storages._heartbeat import BaseHeartbeat

    storage = study._storage
    assert isinstance(storage, BaseHeartbeat), "the study's storage has no heartbeats"
    storage.record_heartbeat(trial._trial_id)


def retry_callback(max_retry: int = 1) -> Any:
    """The callback that re-enqueues a failed trial (its name changed in Optuna 4.9)."""
    import warnings

    import optuna

    cls = (getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
           or optuna.storages.RetryFailedTrialCallback)
    with warnings.catch_warnings():  # "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return cls(max_retry=max_retry)


def retry_callback_kwargs(max_retry: int = 1) -> dict[str, Any]:
    """RDBStorage's keyword for that callback, named after it ({name: callback})."""
    import optuna

    if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):  # optuna >= 4.9
        return {"heartbeat_stale_trial_callback": retry_callback(max_retry)}
    return {"failed_trial_callback": retry_callback(max_retry)}
