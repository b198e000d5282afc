"""Shared helpers of the reliability tests: run the real CLI in a fresh process, read what it wrote.

Every run goes through `python -m automl` (the same `automl.cli:main` as the `automl` script), in a
temporary working directory, with the repository first on PYTHONPATH and the test-only fault
families loaded through the engine's plugin hook (AUTOML_PLUGINS=tests.plugins.fault_families).
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
MEDPAR = DATA / "medpar_300.csv"  # binary target `died`, 300 rows, integer columns
PENGUINS = DATA / "penguins.csv"  # multiclass target `species`, categoricals island/sex, missing values
PLUGINS = "tests.plugins.fault_families"
MARKER_ENV = "AUTOML_FAULT_MARKER_DIR"


def cli_env(marker_dir: Path | None = None, plugins: bool = True) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("HYDRA_FULL_ERROR", None)
    env.pop(MARKER_ENV, None)
    env.pop("AUTOML_PLUGINS", None)
    if plugins:
        env["AUTOML_PLUGINS"] = PLUGINS
    if marker_dir is not None:
        env[MARKER_ENV] = str(marker_dir)
    return env


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "automl", *args]


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess:
    """Run `automl ARGS` to completion; returns the CompletedProcess (text stdout/stderr)."""
    return subprocess.run(cli_argv(*args), cwd=cwd, env=env or cli_env(), capture_output=True, text=True,
                          timeout=timeout)


_WARNING = re.compile(r"^\S.*:\d+: \w*Warning: ")


def error_lines(stderr: str) -> list[str]:
    """The lines of stderr a user reads as the error: without log records ('[...') and Python warnings
    (`file:line: XWarning: msg` and the indented source line printed after it)."""
    out: list[str] = []
    after_warning = False
    for line in stderr.splitlines():
        if not line.strip():
            continue
        if after_warning and line.startswith((" ", "\t")):
            continue
        after_warning = False
        if _WARNING.match(line) or re.match(r"^\w*Warning: ", line):
            after_warning = True
            continue
        if line.startswith("["):
            continue
        out.append(line)
    return out


def leaderboard(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "leaderboard.csv", dtype={"trial": str})


def load_study(run_dir: Path, name: str = "automl") -> Any:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(run_dir / "study.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def marker_pids(marker_dir: Path, fault: str) -> list[int]:
    return [int(p.read_text()) for p in sorted(marker_dir.glob(f"{fault}.*")) if p.read_text().strip()]


def wait_for_marker(marker_dir: Path, fault: str, proc: subprocess.Popen, timeout: float = 60) -> int:
    """Wait until a trial is inside `fault` (the plugin writes a marker); returns the pid that fits."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        pids = marker_pids(marker_dir, fault)
        if pids:
            return pids[0]
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before a {fault} trial started")
        time.sleep(0.05)
    raise AssertionError(f"no {fault} trial started within {timeout}s")


def pid_alive(pid: int) -> bool:
    """True if pid runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pid: int, timeout: float) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def kill_if_ours(pid: int, run_dir: Path) -> None:
    """Cleanup: SIGKILL a trial process one of our runs left behind (its command line names run_dir)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if b"automl" in cmdline and str(run_dir).encode() in cmdline and pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
