"""The Python API as a notebook uses it: fit from a DataFrame, look at the run, predict, load the folder
back, predict again (the same answers). One real fit, shared by the module; the rest is cheap."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import automl
from automl.errors import UserError
from tests.cli_runner import DATA, ROOT

OVERRIDES = ["budget.time_s=20", "budget.n_trials=4", "search.cv_folds=3",
             "estimators.include=[baseline,linear,hist_gradient_boosting]"]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, automl.Run, Path]:
    frame = pd.read_csv(DATA / "penguins.csv")
    out = tmp_path_factory.mktemp("api") / "penguins"
    run = automl.fit(frame, target="species", overrides=OVERRIDES, output_dir=out)
    return frame, run, out


def test_fit_from_a_frame_predict_load_predict_again(fitted):
    frame, run, out = fitted
    # the run folder, its files parsed
    assert run.dir == out and (out / "model.onnx").is_file()
    assert run.manifest.status == "COMPLETE" and run.manifest.target == "species"
    assert run.manifest.task == "multiclass" and run.manifest.metric == "log_loss"
    assert run.card.startswith("# Model card") and "species" in run.card
    board = run.leaderboard
    assert isinstance(board, pd.DataFrame) and {"rank", "family", "status"} <= set(board.columns)
    assert len(board) >= 1 and set(board["family"]) <= {"baseline", "linear", "hist_gradient_boosting", "ensemble"}
    # the frame became the run's data file, row for row (the index is not data)
    assert Path(run.manifest.data["path"]) == (out / "data.parquet").absolute()
    pd.testing.assert_frame_equal(pd.read_parquet(out / "data.parquet"), frame)

    # new rows, without the target, on an index of their own
    picked = frame.sample(60, random_state=1)
    new = picked.drop(columns=["species"]).set_axis(pd.RangeIndex(1000, 1060))
    labels, proba = run.predict(new), run.predict_proba(new)
    assert list(labels.index) == list(new.index) and list(proba.index) == list(new.index)
    assert run.classes == ["Adelie", "Chinstrap", "Gentoo"] == list(proba.columns)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert (labels == proba.idxmax(axis=1)).all()  # log_loss: no tuned threshold, label = most probable
    assert (labels.to_numpy() == picked["species"].to_numpy()).mean() > 0.9  # a real model: penguins are easy

    again = automl.load(out)
    assert isinstance(again, automl.Run) and again.dir == out
    assert again.manifest == run.manifest and again.card == run.card
    pd.testing.assert_frame_equal(again.leaderboard, run.leaderboard)
    pd.testing.assert_series_equal(again.predict(new), labels)
    pd.testing.assert_frame_equal(again.predict_proba(new), proba)


def test_predict_names_a_missing_column(fitted):
    frame, run, _ = fitted
    with pytest.raises(UserError, match="column 'bill_length_mm': the model needs it"):
        run.predict(frame.drop(columns=["bill_length_mm"]))


def test_a_misspelt_override_raises_before_anything_is_written(tmp_path):
    frame = pd.read_csv(DATA / "penguins.csv")
    with pytest.raises(UserError, match=r"^budget\.time_ss: Key 'time_ss' not in 'BudgetConfig'"):
        automl.fit(frame, target="species", overrides=["budget.time_ss=5"], output_dir=tmp_path / "run")
    with pytest.raises(UserError, match=r"^task\.metric: unknown metric 'rmsee'"):  # the CLI's validation
        automl.fit(frame, target="species", overrides=["task.metric=rmsee"], output_dir=tmp_path / "run")
    with pytest.raises(UserError, match=r"^task\.target: 'price' is not a column of the frame"):
        automl.fit(frame, target="price", output_dir=tmp_path / "run")
    with pytest.raises(UserError, match=r"^task\.target: is given twice"):
        automl.fit(frame, target="species", overrides=["task.target=island"], output_dir=tmp_path / "run")
    with pytest.raises(UserError, match=r"^data\.path: file '.*nope\.csv' does not exist"):
        automl.fit(tmp_path / "nope.csv", target="species", output_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_config_dir_adds_the_users_experiments(tmp_path):
    """config_dir is the CLI's --config-dir: the user's experiment composes on top of the packaged conf/
    (its out-of-range budget, reported by the validation, shows that it was read)."""
    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    (tmp_path / "conf" / "experiment" / "quick.yaml").write_text("# @package _global_\nbudget: {time_s: -3}\n")
    with pytest.raises(UserError, match=r"^budget\.time_s: must be > 0, got -3"):
        automl.fit(overrides=["+experiment=quick"], config_dir=tmp_path / "conf", output_dir=tmp_path / "run")
    with pytest.raises(UserError, match=r"^config: In 'config': Could not find 'experiment/other'"):
        automl.fit(overrides=["+experiment=other"], config_dir=tmp_path / "conf", output_dir=tmp_path / "run")
    with pytest.raises(UserError, match=r"^config_dir: '.*elsewhere' is not a folder"):
        automl.fit(config_dir=tmp_path / "elsewhere")
    assert not (tmp_path / "run").exists()


def test_load_needs_a_run_folder(tmp_path):
    with pytest.raises(UserError, match="is not an automl run folder"):
        automl.load(tmp_path)


def test_import_automl_stays_light():
    """fit/load are attributes resolved on first use: `import automl` loads neither pandas nor the engine."""
    code = ("import sys, automl; print(sorted(m for m in ('automl.api', 'automl.run', 'pandas', 'hydra', 'optuna') "
            "if m in sys.modules)); automl.fit; print('automl.api' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["[]", "True"]


@pytest.mark.slow
@pytest.mark.ci
def test_a_run_without_a_model_raises_run_failed(tmp_path):
    """Every trial of a test-only family raises: fit raises RunFailed, whose run is the folder to inspect.
    In a subprocess: the plugin joins the estimator registry when it is imported (AUTOML_PLUGINS)."""
    code = f"""
import automl, pandas as pd
frame = pd.read_csv({str(DATA / "penguins.csv")!r})
try:
    automl.fit(frame, target="species", output_dir="failed",
               overrides=["budget.time_s=10", "budget.n_trials=1", "estimators.include=[fault_raise]"])
except automl.RunFailed as e:
    print(e.run.dir, e.run.manifest.status, len(e.run.leaderboard), str(e).startswith("the run failed: no trial"))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AUTOML_PLUGINS": "tests.plugins.fault_families"}
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    folder, status, n_trials, message = p.stdout.split()
    assert (folder, status, message) == ("failed", "FAILED", "True") and int(n_trials) >= 1
    assert (tmp_path / "failed" / "leaderboard.csv").is_file() and not (tmp_path / "failed" / "model.onnx").exists()


def test_conformal_outputs_reach_the_python_api(fitted, tmp_path):
    """task.coverage puts an `interval` output in a regression graph: run.predict_interval returns it around
    run.predict; a model without it (the penguins fit) says which setting adds it."""
    frame, run, _ = fitted
    with pytest.raises(UserError, match=r"task\.coverage"):
        run.predict_set(frame.drop(columns=["species"]))
    wages = pd.read_csv(DATA / "slid_wages_600.csv")
    reg = automl.fit(wages, target="wages", output_dir=tmp_path / "wages",
                     overrides=["budget.time_s=20", "budget.n_trials=3", "search.cv_folds=3", "task.coverage=0.9",
                                "estimators.include=[baseline,linear,hist_gradient_boosting]"])
    rows = wages.drop(columns=["wages"])
    iv, pred = reg.predict_interval(rows), reg.predict(rows)
    assert list(iv.columns) == ["lower", "upper"] and list(iv.index) == list(rows.index)
    assert ((iv["lower"] <= pred + 1e-4) & (pred <= iv["upper"] + 1e-4)).all()
    inside = ((wages["wages"] >= iv["lower"]) & (wages["wages"] <= iv["upper"])).mean()
    assert inside >= 0.8, inside  # 0.9 on new rows; these are mostly training rows
    pd.testing.assert_frame_equal(automl.load(tmp_path / "wages").predict_interval(rows), iv)
