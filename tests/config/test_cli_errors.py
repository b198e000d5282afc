"""Every conf option composes against its schema; config mistakes fail early with one clear line."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from automl.cli import CONF_DIR, to_run_config
from automl.config.schema import RunConfig, register_configs
from tests.cli_runner import DATA, error_lines, run_cli

GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())


def _options() -> list[tuple[str, str]]:
    return [(g, f.stem) for g in GROUPS for f in sorted((CONF_DIR / g).glob("*.yaml"))]


@pytest.mark.parametrize("group,option", _options())
def test_every_option_composes_to_the_typed_config(group: str, option: str):
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"{group}={option}"])
    config = to_run_config(cfg)
    assert isinstance(config, RunConfig)
    assert Path(config.data.path).exists()  # the demo ships inside the package


def _err(tmp_path: Path, *overrides: str) -> tuple[int, list[str], str]:
    p = run_cli(*overrides, f"hydra.run.dir={tmp_path / 'run'}", timeout=120)
    return p.returncode, error_lines(p.stderr), p.stderr


@pytest.mark.parametrize("override,needle", [
    ("budget.time_z=5", "time_z"),
    ("budget.time_s=abc", "budget.time_s"),
    ("+search.foo=1", "search.foo"),
    ("task.type=ternary", "task.type"),
])
def test_compose_time_errors_exit_2(tmp_path, override, needle):
    code, _, stderr = _err(tmp_path, override)
    assert code == 2
    assert needle in stderr


@pytest.mark.parametrize("overrides,needle", [
    (["budget.time_s=0"], "budget.time_s"),
    (["data.path=/no/such/file.csv"], "data.path"),
    (["task.target=nope"], "task.target"),
    (["task.metric=rmse"], "task.metric"),
    (["task.metric=accuracyy"], "task.metric"),
    (["estimators.include=[catbost]"], "estimators.include"),
    (["search.cv_folds=1"], "search.cv_folds"),
    (["task.metric=precision_at_recall"], "task.min_recall"),
    (["task.min_precision=0.5"], "task.min_precision"),
    (["tracking.register_as=churn"], "tracking.register_as"),
    (["tracking=mlflow", "tracking.timeout_s=0"], "tracking.timeout_s"),
    (["estimators.include=[lightgbm]", "+search.fixed.lightgbm.leaves=3"], "search.fixed.lightgbm.leaves"),
    (["data.group_column=nope"], "data.group_column"),
    (["data.time_column=island"], "data.time_column"),
    (["search.objectives=[metric,speed]"], "search.objectives"),
    (["search.objectives=[latency]"], "search.objectives"),
    (["budget.lean_final=true", "budget.memory_mb=400"], "budget.lean_final"),
])
def test_semantic_errors_are_one_line_exit_2(tmp_path, overrides, needle):
    code, lines, stderr = _err(tmp_path, *overrides)
    assert code == 2, stderr
    assert "Traceback" not in stderr
    assert len(lines) == 1 and lines[0].startswith(f"error: {needle}"), stderr
    assert "." in lines[0]  # rule. fix.


def test_target_error_names_the_columns(tmp_path):
    _, lines, _ = _err(tmp_path, f"data.path={DATA / 'medpar_600.csv'}", "task.target=dead")
    assert "'dead' is not a column" in lines[0] and "died" in lines[0]


def test_an_error_leaves_an_existing_run_folder_untouched(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.onnx").write_bytes(b"earlier good model")
    code, _, _ = _err(tmp_path, "task.metric=rmse")
    assert code == 2
    assert (run / "model.onnx").read_bytes() == b"earlier good model"


def test_debug_shows_the_traceback(tmp_path):
    p = run_cli("budget.time_s=0", "--debug", f"hydra.run.dir={tmp_path}", timeout=120)
    assert p.returncode != 0 and "Traceback" in p.stderr


def test_help_is_fast_and_names_the_subcommands():
    import time

    t = time.monotonic()
    p = run_cli("--help", timeout=60)
    assert p.returncode == 0 and "automl predict" in p.stdout
    assert time.monotonic() - t < 10


def test_the_registry_imports_no_model_library():
    """Config validation reads the registry (estimators.include); a bad config should fail in about a
    second, not wait for scikit-learn to import (it did: HGB and k-NN subclassed it at module level)."""
    import subprocess
    import sys

    code = ("import sys, automl.estimators, automl.config; "
            "print(sorted(m for m in ('sklearn', 'catboost', 'lightgbm', 'xgboost', 'onnxruntime', 'torch') "
            "if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"
