"""The engine as a new user gets it: build the wheel, install it into a fresh virtual environment (every
dependency from the package index pip is configured with, nothing from this environment), and run it
from an empty folder outside the source tree, without PYTHONPATH.

Slow (a venv and a dependency install, several runs): `-m slow`; .ci/run runs this module after the
default suite. The second test is the README's first command (`pip install -e . && automl`) on the
editable install .ci/run makes of the clone.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from tests.cli_runner import ROOT
from tests.conftest import require

pytestmark = [pytest.mark.slow, pytest.mark.ci]
SUBCOMMANDS = ("predict", "serve", "drift", "compare", "worker", "registry", "report", "export")
# what the wheel is built from: the files pyproject.toml packages, nothing else of the checkout
SOURCES = ("pyproject.toml", "README.md", "automl", "conf", "search_spaces")


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{' '.join(argv)} exited {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}"
    return p


def _user_env(bindir: Path | None = None) -> dict[str, str]:
    """The environment of a user's shell: no PYTHONPATH (the checkout is not on the path)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR", "VIRTUAL_ENV")}
    if bindir is not None:
        env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(bindir.parent)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    dist = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-w", str(dist)], src, _user_env(), 600)
    (whl,) = dist.glob("automl-*.whl")
    return whl


def test_the_wheel_carries_every_module_and_the_shipped_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    want = {p.relative_to(ROOT).as_posix() for p in (ROOT / "automl").rglob("*") if p.suffix in (".py", ".csv")}
    want |= {"automl/conf/" + p.relative_to(ROOT / "conf").as_posix() for p in (ROOT / "conf").rglob("*.yaml")}
    want |= {"automl/search_spaces/" + p.name for p in (ROOT / "search_spaces").iterdir() if p.is_file()}
    assert want - names == set()  # a package missing from [tool.setuptools] packages shows up here


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no system site-packages) with the wheel and its dependencies from the index."""
    env = tmp_path_factory.mktemp("venv") / "venv"
    _run([sys.executable, "-m", "venv", str(env)], env.parent, _user_env())
    _run([str(env / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], env.parent, _user_env(), 1800)
    return env


def test_the_wheel_runs_from_an_empty_folder(venv, tmp_path):
    bindir = venv / "bin"
    env = _user_env(bindir)
    home = tmp_path / "empty"
    home.mkdir()
    automl = str(bindir / "automl")

    # the package imported is the wheel's, inside the venv, with its configs and search spaces
    where = _run([str(bindir / "python"), "-c", "import automl, automl.resources as r; "
                  "print(automl.__file__); print(r.CONF_DIR); print(r.SPACE_DIR)"], home, env).stdout.split()
    site = (venv / "lib").resolve()
    assert all(Path(w).resolve().is_relative_to(site) for w in where), where
    assert not any(Path(w).resolve().is_relative_to(ROOT) for w in where), where

    assert "automl: declare a task" in _run([automl, "--help"], home, env).stdout
    for verb in SUBCOMMANDS:
        assert f"usage: automl {verb}" in _run([automl, verb, "--help"], home, env).stdout

    # the README's first command, with a shorter budget: the bundled demo from the installed package
    _run([automl, "budget.time_s=20"], home, env, timeout=200)
    (run,) = home.glob("outputs/*/*_penguins")
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "COMPLETE" and (run / "model.onnx").is_file() and (run / ".hydra").is_dir()
    assert manifest["git_sha"] is None  # not this checkout's commit: the wheel is not a git checkout
    assert Path(manifest["data"]["path"]).resolve().is_relative_to(site)  # the demo data shipped in the wheel

    # the verbs that take a run folder, on this one
    demo = home / "penguins.csv"
    shutil.copy(ROOT / "automl" / "demo" / "penguins.csv", demo)
    _run([automl, "predict", "--model", str(run), "--data", str(demo), "--out", "preds.csv"], home, env)
    assert len(pd.read_csv(home / "preds.csv")) == len(pd.read_csv(demo))
    _run([automl, "report", str(run)], home, env)
    _run([automl, "drift", "--model", str(run), "--data", str(demo)], home, env)
    _run([automl, "registry", "--root", "reg", "push", "--name", "penguins", str(run)], home, env)
    assert "penguins" in _run([automl, "registry", "--root", "reg", "list"], home, env).stdout


def test_user_configs_and_the_python_api_on_top_of_the_wheel(venv, tmp_path):
    """--config-dir + an experiment and search.space_dir on the CLI; automl.fit/load from the wheel."""
    bindir = venv / "bin"
    env = _user_env(bindir)
    home = tmp_path / "project"
    (home / "conf" / "experiment").mkdir(parents=True)
    shutil.copy(ROOT / "automl" / "demo" / "penguins.csv", home / "penguins.csv")
    spaces = home / "my_spaces"
    shutil.copytree(ROOT / "search_spaces", spaces)
    # a narrowed space: linear.C fixed near 0.5 (the shipped range is 0.001..1000)
    lines = (spaces / "linear.yaml").read_text().splitlines()
    lines[0] = "C:        {type: float, low: 0.5, high: 0.50001, default: 0.5, when: {task: [binary, multiclass]}}"
    (spaces / "linear.yaml").write_text("\n".join(lines) + "\n")
    (home / "conf" / "experiment" / "penguins.yaml").write_text(
        "# @package _global_\n"
        "data: {path: penguins.csv}\n"
        "task: {target: species}\n"
        "budget: {time_s: 15, n_trials: 4}\n"
        "estimators: {include: [linear]}\n"
        f"search: {{space_dir: {spaces}, cv_folds: 3}}\n")
    _run([str(bindir / "automl"), "--config-dir", "conf", "+experiment=penguins", "hydra.run.dir=exp"], home, env,
         timeout=200)
    board = pd.read_csv(home / "exp" / "leaderboard.csv")
    cs = [json.loads(p)["linear.C"] for p in board.loc[board["trial"] != "ensemble", "params"]]
    assert cs and all(0.5 <= c <= 0.50001 for c in cs), cs
    assert json.loads((home / "exp" / "manifest.json").read_text())["budget"]["time_s"] == 15

    code = """
import automl, pandas as pd
frame = pd.read_csv("penguins.csv")
run = automl.fit("penguins.csv", target="species", output_dir="api_run",
                 overrides=["budget.time_s=15", "budget.n_trials=3", "estimators.include=[baseline,linear]"])
again = automl.load("api_run")
assert again.predict(frame).equals(run.predict(frame)) and again.predict_proba(frame).equals(run.predict_proba(frame))
print(automl.__file__, run.manifest.status, (run.predict(frame) == frame["species"]).mean())
"""
    out = _run([str(bindir / "python"), "-c", code], home, env, timeout=200).stdout.split()
    assert Path(out[0]).resolve().is_relative_to((venv / "lib").resolve())
    assert out[1] == "COMPLETE" and float(out[2]) > 0.9


def test_readme_first_command_on_the_editable_install(tmp_path):
    """`pip install -e . && automl`: .ci/run installs the clone editable; its `automl` script, from an
    empty folder without PYTHONPATH, runs the bundled demo from this checkout's conf/."""
    bindir = Path(sys.executable).parent
    script = bindir / "automl"
    probe = subprocess.run([sys.executable, "-c", "import automl; print(automl.__file__)"], cwd=tmp_path,
                           env=_user_env(), capture_output=True, text=True, timeout=60)
    installed = Path(probe.stdout.strip() or "/").resolve()
    require("an editable install of this checkout", script.exists() and installed == (ROOT / "automl" /
            "__init__.py").resolve(), f"`pip install -e {ROOT}` (the `automl` found is {installed}; .ci/run "
            "installs the clone)")
    env = _user_env()
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    _run([str(script), "budget.time_s=15"], tmp_path, env, timeout=200)
    (run,) = tmp_path.glob("outputs/*/*_penguins")
    assert json.loads((run / "manifest.json").read_text())["status"] == "COMPLETE"
    assert (run / "model.onnx").is_file()
