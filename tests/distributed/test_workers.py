"""Several workers on one study: the exact trial count, unique trial numbers, a killed worker's trial
failed and retried once with nothing completed lost. PostgreSQL (real server, AUTOML_TEST_PG_URL, which
.ci/run sets) and the embedded journal file (no server)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "medpar_600.csv"
PG_URL = os.environ.get("AUTOML_TEST_PG_URL", "")
needs_pg = pytest.mark.requires("PostgreSQL", bool(PG_URL), "AUTOML_TEST_PG_URL is not set: these tests need a "
                                "PostgreSQL server (.ci/run installs and starts one and sets it)")
# cheap families keep each trial around a second on a loaded 2-core machine
FAST = ["estimators.include=[baseline,linear,knn]", "search.cv_folds=3", "export.refit_full=false"]


def _start(*args: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", "automl", *args], cwd=ROOT, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def _driver(run_dir: Path, n_trials: int, *extra: str, log: Path) -> subprocess.Popen:
    return _start(f"data.path={DATA}", "task.target=died", "budget.time_s=120", f"budget.n_trials={n_trials}",
                  *FAST, *extra, f"hydra.run.dir={run_dir}", log=log)


def _study(storage: str, name: str):
    import optuna

    from automl.search.storage import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(storage))


def _wait(procs: list[subprocess.Popen], logs: list[Path], timeout: float = 240) -> list[int]:
    end = time.time() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(1.0, end - time.time()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("timed out:\n" + "\n".join(log.read_text()[-3000:] for log in logs))
    return [p.returncode for p in procs]


def _counted(trials) -> list:
    """Trials that count toward budget.n_trials: finished, not skipped for time, not failed-and-retried."""
    retried = {t.system_attrs.get("failed_trial") for t in trials} - {None}
    return [t for t in trials if t.state.is_finished() and not t.user_attrs.get("refunded")
            and t.number not in retried]


def _check_exact(study, n: int, run_dir: Path) -> None:
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.name != "WAITING"]
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) == len({t._trial_id for t in trials})
    assert sorted(numbers) == list(range(len(numbers)))
    assert len(_counted(trials)) == n, [(t.number, t.state.name, t.user_attrs.get("status")) for t in trials]
    assert not [t for t in trials if t.state.name == "RUNNING"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "COMPLETE", manifest.get("error")
    assert (run_dir / "model.onnx").stat().st_size > 0


def _start_driver(storage: str, run_dir: Path, n: int, name: str, driver_extra: list[str],
                  log: Path) -> tuple[subprocess.Popen, str]:
    """The driver, and the storage workers join: the URL, or the journal file once the driver opened it."""
    d = _driver(run_dir, n, f"search.study_name={name}", *driver_extra, log=log)
    join = storage or str(run_dir / "study.journal")
    end = time.time() + 60
    while not storage and not Path(join).exists() and time.time() < end:
        time.sleep(0.2)
    return d, join


def _join_and_count(storage: str, tmp_path: Path, driver_extra: list[str], n: int = 9) -> None:
    name = f"t{uuid.uuid4().hex[:10]}"
    run_dir = tmp_path / "run"
    logs = [tmp_path / "driver.log", tmp_path / "w1.log", tmp_path / "w2.log"]
    d, join = _start_driver(storage, run_dir, n, name, driver_extra, logs[0])
    ws = [_start("worker", "--storage", join, "--study", name, "--wait", "90", log=log) for log in logs[1:]]
    codes = _wait([d, *ws], logs)
    assert codes == [0, 0, 0], "\n".join(log.read_text()[-2000:] for log in logs)
    study = _study(join, name)
    _check_exact(study, n, run_dir)
    workers = {t.user_attrs.get("worker") for t in study.get_trials(deepcopy=False)}
    assert len(workers) >= 2, workers  # more than one process ran trials


@needs_pg
def test_postgres_driver_and_two_workers_reach_the_exact_trial_count(tmp_path):
    _join_and_count(PG_URL, tmp_path, [f"search.storage={PG_URL}", "search.heartbeat_s=1"])


def test_journal_driver_and_two_workers_reach_the_exact_trial_count(tmp_path):
    """The no-server variant, in the default suite: study.journal in the run folder, no PostgreSQL."""
    _join_and_count("", tmp_path, ["search.n_workers=2"], n=6)  # forked local workers plus two that join


def _kill_mid_trial(storage: str, name: str, worker: subprocess.Popen, timeout: float = 90) -> tuple[int, set[int]]:
    """SIGKILL the worker while it runs a trial; returns that trial's number and the trials complete then."""
    from optuna.trial import TrialState

    me = f"{socket.gethostname()}:{worker.pid}"
    end = time.time() + timeout
    while time.time() < end:
        try:
            study = _study(storage, name)
        except KeyError:
            time.sleep(0.5)
            continue
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.user_attrs.get("worker") == me:
                # stopped, the worker cannot finish the trial between this check and the kill (a trial
                # pruned on its first fold finished in that window, and the test found it PRUNED)
                os.kill(worker.pid, signal.SIGSTOP)
                now = {c.number: c for c in _study(storage, name).get_trials(deepcopy=False)}
                if now[t.number].state != TrialState.RUNNING:
                    os.kill(worker.pid, signal.SIGCONT)
                    break
                complete = {n for n, c in now.items() if c.state == TrialState.COMPLETE}
                os.kill(worker.pid, signal.SIGKILL)
                worker.wait()
                return t.number, complete
        time.sleep(0.05)
    pytest.fail("the worker never ran a trial")


def _kill_and_recover(storage: str, tmp_path: Path, driver_extra: list[str], n: int = 8) -> None:
    name = f"k{uuid.uuid4().hex[:10]}"
    run_dir = tmp_path / "run"
    logs = [tmp_path / "driver.log", tmp_path / "victim.log", tmp_path / "w2.log"]
    d, join = _start_driver(storage, run_dir, n, name, driver_extra, logs[0])
    victim = _start("worker", "--storage", join, "--study", name, "--wait", "90", log=logs[1])
    other = _start("worker", "--storage", join, "--study", name, "--wait", "90", log=logs[2])
    killed, complete_then = _kill_mid_trial(join, name, victim)
    codes = _wait([d, other], [logs[0], logs[2]])
    assert codes == [0, 0], "\n".join(log.read_text()[-2000:] for log in logs)
    study = _study(join, name)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    assert trials[killed].state.name == "FAIL"
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].state.is_finished(), [t.number for t in retries]
    # the same configuration, run again (killed while sampling, the retry samples the rest)
    assert trials[killed].params.items() <= retries[0].params.items()
    assert all(trials[c].state.name == "COMPLETE" for c in complete_then)  # nothing completed is lost
    _check_exact(study, n, run_dir)
    import pandas as pd

    board = pd.read_csv(run_dir / "leaderboard.csv")
    assert complete_then <= {int(x) for x in board["trial"] if str(x).isdigit()}


@needs_pg
def test_postgres_killed_worker_trial_is_failed_and_retried_once(tmp_path):
    _kill_and_recover(PG_URL, tmp_path, [f"search.storage={PG_URL}", "search.heartbeat_s=1"])


@pytest.mark.slow
def test_journal_killed_worker_trial_is_failed_and_retried_once(tmp_path):
    _kill_and_recover("", tmp_path, [], n=16)
