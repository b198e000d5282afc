"""Shared fixtures: the small real data files in tests/data, a CLI runner and tiny in-code frames."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests import xdist_share

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
CONF_DIR = ROOT / "conf"
SPACE_DIR = ROOT / "search_spaces"

CliResult = tuple[int, str, str]
# .ci/run sets CI=true and installs every component a test needs (chromium, PostgreSQL, the serve
# extra), so there a missing one is a broken install, not a reason to skip
ON_CI = os.environ.get("CI", "").strip().lower() == "true"


# --- components some tests need -------------------------------------------------------------------
def require(component: str, available: bool, why: str) -> None:
    """Go on when `component` is here. When it is not: skip and say why, or fail under CI=true, so a
    failed install in CI never turns into a silent skip. Works in a test, a fixture or at module level."""
    if available:
        return
    if ON_CI:
        pytest.fail(f"{component} is missing under CI=true (.ci/run installs it): {why}", pytrace=False)
    pytest.skip(f"{component} is not available: {why}", allow_module_level=True)


def importable(module: str) -> bool:
    """Whether `import module` would find it (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a missing parent package of a dotted name
        return False


# --- pytest-xdist (the README's command runs -n 2 --dist loadgroup) -------------------------------
# Tests that share a session fixture across files run on one worker, so it is built once (each worker
# has its own session); a group named in a module wins over the default one below.
SHARED_FIXTURE_GROUPS = {
    # the `runs` fixture (tests/e2e/conftest.py): three real runs, timed against their budget
    "e2e_runs": ("tests/e2e/test_run.py", "tests/e2e/test_report.py", "tests/e2e/test_sweep_report.py"),
    # the `serving_runs` fixture (tests/serving/conftest.py): two real runs
    "serving_runs": ("tests/serving/test_server.py", "tests/serving/test_drift.py", "tests/serving/test_registry.py"),
}


def pytest_configure(config: pytest.Config) -> None:
    xdist_share.configure(config.option.basetemp)


@pytest.hookimpl(tryfirst=True)  # before xdist reads the xdist_group marks into the node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """By default a module's tests run on one worker (as --dist loadfile): module-scoped fixtures (real
    runs, servers) are built once, and the tests of a module that share a port, a folder or a database
    (tests/distributed: one PostgreSQL database) never run at the same time."""
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        path = item.nodeid.split("::", 1)[0]
        group = next((g for g, files in SHARED_FIXTURE_GROUPS.items() if path in files), path)
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """Under xdist: a test marked `alone` (it measures its own wall time) has the machine to itself."""
    with xdist_share.alone() if item.get_closest_marker("alone") else xdist_share.shared():
        yield


def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.requires(component, available, why)`: require() before the test runs."""
    for mark in item.iter_markers("requires"):
        require(*mark.args)


def run_automl(*args: str, run_dir: Path | None = None, cwd: Path | None = None,
               timeout: float = 300) -> CliResult:
    """`python -m automl ARGS [hydra.run.dir=RUN_DIR]` in a fresh process, as a user runs it.

    Returns (returncode, stdout, stderr). The clone's own code comes first on the path."""
    argv = [sys.executable, "-m", "automl", *args]
    if run_dir is not None:
        argv.append(f"hydra.run.dir={run_dir}")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("HYDRA_FULL_ERROR", None)
    p = subprocess.run(argv, cwd=cwd or ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def error_lines(stderr: str) -> list[str]:
    """The lines of stderr a user reads: without log records and library warnings."""
    return [ln for ln in stderr.splitlines()
            if ln.strip() and not ln.startswith("[") and "Warning" not in ln and not ln.startswith((" ", "\t"))]


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., CliResult]:
    """cli(*overrides, run_dir=None) -> (returncode, stdout, stderr); the run folder is tmp_path/run
    unless run_dir says otherwise; the process runs in tmp_path so nothing lands in the repository."""

    def _run(*overrides: str, run_dir: Path | None = None, timeout: float = 300) -> CliResult:
        return run_automl(*overrides, run_dir=run_dir or tmp_path / "run", cwd=tmp_path, timeout=timeout)

    return _run


# --- the data files -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def penguins_csv() -> Path:
    return DATA / "penguins.csv"  # multiclass: species


@pytest.fixture(scope="session")
def medpar_csv() -> Path:
    return DATA / "medpar_600.csv"  # binary: died


@pytest.fixture(scope="session")
def slid_csv() -> Path:
    return DATA / "slid_wages_600.csv"  # regression: wages (missing values, categoricals)


@pytest.fixture(scope="session")
def aids_csv() -> Path:
    return DATA / "aids_600.csv"  # binary: status; a column named T.categ


# --- tiny frames you can read in the diff ---------------------------------------------------------
def tiny_frame(task: str, n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Two numeric columns (one with NaN), one categorical (with missing) and a target `y`."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.uniform(0, 10, size=n)
    colour = rng.choice(["red", "green", "blue"], size=n).astype(object)
    if task == "regression":
        y = 3 * x1 + 0.5 * x2 + (colour == "red") + rng.normal(0, 0.1, n)
    elif task == "binary":
        y = np.where(x1 + (colour == "red") > 0.3, "yes", "no")
    else:
        y = np.select([x1 < -0.4, x1 < 0.4], ["a", "b"], "c")
    x2[::7] = np.nan
    colour[::11] = None
    return pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "y": y})


@pytest.fixture
def binary_frame() -> pd.DataFrame:
    return tiny_frame("binary")


@pytest.fixture
def multiclass_frame() -> pd.DataFrame:
    return tiny_frame("multiclass")


@pytest.fixture
def regression_frame() -> pd.DataFrame:
    return tiny_frame("regression")
