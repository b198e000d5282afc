"""Each use of Optuna's internals (automl/search/optuna_compat.py), against real storages: an Optuna
upgrade that moves one of them fails here."""
from __future__ import annotations

import time

import optuna
import pytest
from optuna.trial import TrialState

from automl.search import optuna_compat as oc

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = [pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
              pytest.mark.filterwarnings("ignore:Heartbeat of storage")]


def _journal(path) -> optuna.storages.JournalStorage:
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


@pytest.fixture(params=["memory", "journal"])
def storage(request, tmp_path):
    if request.param == "memory":
        return optuna.storages.InMemoryStorage()
    return _journal(tmp_path / "s.journal")


def _rdb(tmp_path, **kw) -> optuna.storages.RDBStorage:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}", **kw)


def test_trial_id_is_unique_across_studies_of_one_storage(storage):
    a = optuna.create_study(storage=storage, study_name="a")
    b = optuna.create_study(storage=storage, study_name="b")
    ta, tb = a.ask(), b.ask()
    assert ta.number == tb.number == 0
    assert isinstance(oc.trial_id(ta), int) and oc.trial_id(ta) != oc.trial_id(tb)
    assert oc.trial_id(a.trials[0]) == oc.trial_id(ta)  # a FrozenTrial has the same id


def test_fresh_trial_and_trial_state_read_the_storage_now(tmp_path):
    path = tmp_path / "s.journal"
    mine = optuna.create_study(storage=_journal(path), study_name="s")
    trial = mine.ask()
    assert oc.trial_state(mine, trial) == TrialState.RUNNING
    other = optuna.load_study(storage=_journal(path), study_name="s")  # another process's handle
    other.tell(other.trials[0].number, 1.0)
    assert oc.trial_state(mine, trial) == TrialState.COMPLETE
    assert oc.fresh_trial(mine, trial).value == 1.0


def test_start_waiting_trial_claims_that_trial_once(storage):
    study = optuna.create_study(storage=storage)
    study.enqueue_trial({"x": 1.0})
    study.enqueue_trial({"x": 2.0})
    second = study.get_trials(states=(TrialState.WAITING,))[1]
    trial = oc.start_waiting_trial(study, second)
    assert trial is not None and trial.number == second.number
    assert trial.suggest_float("x", 0.0, 10.0) == 2.0  # the queued parameters
    assert oc.trial_state(study, second) == TrialState.RUNNING
    assert oc.start_waiting_trial(study, second) is None  # claimed already
    study.tell(trial, 0.0)
    assert oc.start_waiting_trial(study, second) is None  # finished


def test_pop_waiting_trial_takes_the_oldest_and_never_creates_one(storage):
    study = optuna.create_study(storage=storage)
    assert oc.pop_waiting_trial(study) is None and not study.trials
    study.enqueue_trial({"x": 1.0})
    study.enqueue_trial({"x": 2.0})
    trial = oc.pop_waiting_trial(study)
    assert trial.number == 0 and oc.trial_state(study, trial) == TrialState.RUNNING
    study.tell(trial, 0.0)
    assert oc.pop_waiting_trial(study).number == 1
    assert oc.pop_waiting_trial(study) is None and len(study.trials) == 2


def test_fail_trial_sets_the_reason_then_fails_it_once(storage):
    study = optuna.create_study(storage=storage)
    study.ask()
    running = study.trials[0]
    assert oc.fail_trial(study, running, {"status": "FAIL", "error": "worker h:1 died"})
    after = study.trials[0]
    assert after.state == TrialState.FAIL
    assert after.user_attrs == {"status": "FAIL", "error": "worker h:1 died"}
    assert not oc.fail_trial(study, running, {"error": "again"})  # another worker failed it first
    assert study.trials[0].user_attrs["error"] == "worker h:1 died"


def test_no_heartbeat_without_a_database(storage):
    study = optuna.create_study(storage=storage)
    assert not oc.heartbeat_enabled(study) and oc.heartbeat_interval(study) is None


def test_heartbeats_keep_a_trial_from_going_stale(tmp_path):
    study = optuna.create_study(storage=_rdb(tmp_path, heartbeat_interval=1, grace_period=2))
    assert oc.heartbeat_enabled(study) and oc.heartbeat_interval(study) == 1
    beating, silent = study.ask(), study.ask()
    oc.record_heartbeat(study, silent)  # once, then silent
    for _ in range(6):
        oc.record_heartbeat(study, beating)
        time.sleep(0.5)
    optuna.storages.fail_stale_trials(study)
    assert oc.trial_state(study, beating) == TrialState.RUNNING
    assert oc.trial_state(study, silent) == TrialState.FAIL


def test_retry_callback_queues_a_failed_trial_again(storage):
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    assert oc.fail_trial(study, study.trials[0], {})
    oc.retry_callback(max_retry=1)(study, oc.fresh_trial(study, trial))
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].params == study.trials[0].params


def test_retry_callback_kwargs_open_a_database_storage(tmp_path):
    storage = _rdb(tmp_path, heartbeat_interval=1, grace_period=3, **oc.retry_callback_kwargs(max_retry=1))
    (callback,) = oc.retry_callback_kwargs().values()
    assert type(callback) is type(oc.retry_callback())
    assert oc.heartbeat_enabled(optuna.create_study(storage=storage))
