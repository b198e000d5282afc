"""End-to-end: real CLI runs on real data; the run folder, the ONNX contract, predict, resume."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from tests.cli_runner import DATA, error_lines, run_cli
from tests.e2e.conftest import BUDGET, CASES


def _feeds(sess: ort.InferenceSession, df: pd.DataFrame) -> dict[str, np.ndarray]:
    """The ONNX contract, as a user with onnxruntime alone would apply it."""
    feeds = {}
    for inp in sess.get_inputs():
        col = df[inp.name]
        if inp.type == "tensor(string)":
            feeds[inp.name] = col.astype(object).where(col.notna(), "").astype(str).to_numpy().reshape(-1, 1)
        else:
            feeds[inp.name] = col.astype("float32").to_numpy().reshape(-1, 1)
    return feeds


@pytest.mark.parametrize("task", list(CASES))
def test_run_folder_and_onnx_contract(runs, task):
    run, wall = runs[task]
    file, target, metric = CASES[task]
    for name in ("model.onnx", "leaderboard.csv", "model_card.md", "manifest.json", "profile.json", "parity.json",
                 "study.journal", ".hydra/config.yaml", "run.log"):
        assert (run / name).exists(), name
    m = json.loads((run / "manifest.json").read_text())
    assert m["status"] == "COMPLETE" and m["task"] == task and m["metric"] == metric
    assert wall <= BUDGET * 1.1 + 5, wall
    assert json.loads((run / "parity.json").read_text())["passed"]
    final = m["final"]  # the card's holdout score is also what onnxruntime gives for the scored model
    assert final["holdout_score"] == pytest.approx(final["holdout_score_onnx"], rel=1e-4, abs=1e-5)
    lb = pd.read_csv(run / "leaderboard.csv")
    assert {"rank", "trial", "family", "preprocessing", "cv_mean", "cv_std", "holdout", "fit_s",
            "predict_ms_per_row", "status", "error"} <= set(lb.columns)
    assert lb["holdout"].notna().sum() == 1 and (lb["status"] == "COMPLETE").sum() >= 3
    card = (run / "model_card.md").read_text()
    for section in ("## Task and intended use", "## Data profile", "## Search", "Holdout metrics", "## ONNX export",
                    "## Limitations"):
        assert section in card

    sess = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    assert {"input_schema", "target", "task", "metric", "engine_version"} <= set(meta)
    df = pd.read_csv(DATA / file).drop(columns=[target])
    names = [o.name for o in sess.get_outputs()]
    out = dict(zip(names, sess.run(None, _feeds(sess, df)), strict=True))
    assert out["label"].shape == (len(df),)
    if task == "regression":
        assert names == ["label"] and np.isfinite(out["label"]).all()
    else:
        classes = json.loads(meta["class_labels"])
        assert names == ["label", "probabilities"] and out["probabilities"].shape == (len(df), len(classes))
        np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1, atol=1e-5)
        assert set(np.asarray(out["label"]).tolist()) <= set(classes)


# slow: six trials of the boosting and forest families on five folds. Re-scoring is in the default suite end to end in
# test_one_inner_split_scores_the_trials_and_ships_a_calibrated_model, and as units in
# tests/unit/test_validation_choice.py (reorder by the mean of both estimates) and tests/unit/test_final_stage.py
# (selection reads a re-scored trial's fresh OOF)
@pytest.mark.slow
def test_small_data_rescores_the_best_trials_on_fresh_folds(tmp_path):
    """search.rescore=auto on 480 search rows: the best trials are cross-validated again on other folds and
    the final stage starts from the one with the best mean of both estimates."""
    run = tmp_path / "run"
    p = run_cli(f"data.path={DATA / 'slid_wages_600.csv'}", "task.target=wages", "budget.n_trials=6",
                "budget.time_s=120", "estimators.exclude=[knn,mlp]", f"hydra.run.dir={run}", timeout=200)
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads((run / "manifest.json").read_text())
    r = m["final"]["rescore"]
    scored = [t for t in r["trials"] if t["fresh_cv"] is not None]
    assert 2 <= len(scored) <= 5 and r["folds"] == 5 and r["seconds"] > 0
    assert all(t["family"] != "baseline" for t in r["trials"])
    for t in scored:
        assert t["mean"] == pytest.approx((t["cv"] + t["fresh_cv"]) / 2)
        assert t["fresh_cv"] != t["cv"]  # other folds, another estimate
        fresh = np.load(run / "oof" / f"trial_{t['trial']}_fresh.npy")  # what ensemble selection averages in
        assert fresh.shape == np.load(run / "oof" / f"trial_{t['trial']}.npy").shape and np.abs(fresh).sum() > 0
    best = min(scored, key=lambda t: t["mean"])  # rmse
    assert r["best_after"] == best["trial"]
    if m["final"]["kind"] == "single" and not m["final"].get("fallback_reason"):
        assert m["final"]["trial"] == best["trial"]
    assert "Robust selection" in (run / "model_card.md").read_text()


def test_one_inner_split_scores_the_trials_and_ships_a_calibrated_model(tmp_path):
    """search.validation=holdout: each trial is scored on one stratified inner split; the run ships, its card
    says how trials were scored, and calibration is cross-fitted on that split's rows."""
    run = tmp_path / "run"
    p = run_cli(f"data.path={DATA / 'medpar_600.csv'}", "task.target=died", "task.metric=log_loss",
                "budget.time_s=60", "budget.n_trials=5", "search.validation=holdout", f"hydra.run.dir={run}",
                timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads((run / "manifest.json").read_text())
    assert m["status"] == "COMPLETE" and m["search"]["cv_folds"] == 1
    r = m["final"]["rescore"]  # one split is the noisiest estimate: the best trials are scored on another
    assert r["folds"] == 1 and len([t for t in r["trials"] if t["fresh_cv"] is not None]) >= 2
    lb = pd.read_csv(run / "leaderboard.csv")
    assert (lb["status"] == "COMPLETE").sum() >= 5 and (lb["status"] == "PRUNED").sum() == 0
    assert "one inner validation split (20% of the search rows)" in (run / "model_card.md").read_text()
    assert m["final"]["calibration"]["oof_log_loss"]["none"] > 0


# slow: the holdout score equal to onnxruntime's is asserted on every run of test_run_folder_and_onnx_contract,
# T.categ as a graph input by tests/e2e/test_onnx_input_names.py, and export.refit_full=false runs in
# test_relational.py and tests/distributed (and test_export_trial.py, in the README's test command)
@pytest.mark.slow
def test_holdout_score_matches_onnxruntime(tmp_path):
    """With export.refit_full=false the card's holdout score is what onnxruntime gives on those rows."""
    run = tmp_path / "run"
    p = run_cli(f"data.path={DATA / 'aids_600.csv'}", "task.target=status", "budget.time_s=15",
                "export.refit_full=false", "search.cv_folds=3", f"hydra.run.dir={run}", timeout=90)
    assert p.returncode == 0, p.stderr[-2000:]
    final = json.loads((run / "manifest.json").read_text())["final"]
    assert final["holdout_score"] == pytest.approx(final["holdout_score_onnx"], abs=1e-5)
    meta = ort.InferenceSession(str(run / "model.onnx")).get_modelmeta().custom_metadata_map
    schema = json.loads(meta["input_schema"])
    assert "T.categ" in [c["name"] for c in schema]  # graph inputs are named after the columns


def test_predict_and_its_errors(runs, tmp_path):
    run, _ = runs["multiclass"]
    out = tmp_path / "pred.csv"
    p = run_cli("predict", "--model", str(run), "--data", str(DATA / "penguins.csv"), "--out", str(out))
    assert p.returncode == 0, p.stderr
    pred = pd.read_csv(out)
    assert len(pred) == 344 and "prediction" in pred and any(c.startswith("proba_") for c in pred)
    bad = tmp_path / "bad.csv"
    pd.read_csv(DATA / "penguins.csv").drop(columns=["island"]).to_csv(bad, index=False)
    p = run_cli("predict", "--model", str(run / "model.onnx"), "--data", str(bad), "--out", str(tmp_path / "x.csv"))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert error_lines(p.stderr)[-1].startswith("error: column 'island'")
    assert not (tmp_path / "x.csv").exists()


def _trial_rows(path: Path) -> pd.DataFrame:
    lb = pd.read_csv(path)
    lb = lb[lb["trial"].astype(str) != "ensemble"]  # an ensemble row is a result, not a trial
    return lb.assign(trial=lb["trial"].astype(int)).set_index("trial")


# slow: a second search and final stage on the binary run. Resuming a run folder, its earlier trials unchanged,
# is in the default suite in tests/reliability/test_faults.py (after SIGTERM and after SIGKILL of the driver);
# the refusal of different data, below, is too
@pytest.mark.slow
def test_resume_keeps_earlier_trials(runs):
    run, _ = runs["binary"]
    earlier = _trial_rows(run / "leaderboard.csv")
    before = len(earlier)
    file, target, _ = CASES["binary"]
    p = run_cli(f"data.path={DATA / file}", f"task.target={target}", "budget.time_s=25", "budget.n_trials=2",
                "search.cv_folds=3", f"hydra.run.dir={run}", timeout=90)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "resuming study" in p.stdout + p.stderr
    after = _trial_rows(run / "leaderboard.csv")
    # budget.n_trials caps this invocation; on a busy machine the time budget may stop it after one trial
    assert before < len(after) <= before + 2
    kept = after.loc[earlier.index]  # every earlier trial is still there, unchanged
    assert kept["status"].tolist() == earlier["status"].tolist()
    pd.testing.assert_series_equal(kept["cv_mean"], earlier["cv_mean"])


def test_a_run_folder_refuses_different_data(runs):
    """A changed data file is refused rather than mixed into the run folder's study (one line, exit 2)."""
    run, _ = runs["binary"]
    board = (run / "leaderboard.csv").read_bytes()
    p = run_cli(f"data.path={DATA / 'aids_600.csv'}", "task.target=status", "budget.time_s=15",
                f"hydra.run.dir={run}", timeout=90)
    assert p.returncode == 2 and "different data" in p.stderr
    assert (run / "leaderboard.csv").read_bytes() == board


# slow: two runs. A --multirun sweep (one folder per job, summary.csv and report.html at the sweep root) runs
# in the README's test command in tests/tracking/test_mlflow.py (ci); the sweep's comparison page is built and
# rendered in the default suite by tests/e2e/test_sweep_report.py
@pytest.mark.slow
def test_multirun_writes_one_folder_per_job_and_a_summary(tmp_path):
    p = run_cli("--multirun", f"data.path={DATA / 'medpar_600.csv'}", "task.target=died", "seed=0,1",
                "budget.time_s=12", "search.cv_folds=3", f"hydra.sweep.dir={tmp_path}", timeout=200)
    assert p.returncode == 0, p.stderr[-2000:]
    jobs = sorted(d.name for d in tmp_path.iterdir() if d.is_dir())
    assert jobs == ["0_medpar_600", "1_medpar_600"]
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary["seed"]) == [0, 1] and set(summary["status"]) == {"COMPLETE"}
    assert all((tmp_path / j / "model.onnx").exists() for j in jobs)
    page = (tmp_path / "report.html").read_text()  # the sweep's comparison page
    assert 'alt="holdout on medpar_600"' in page and "0_medpar_600" in page and "1_medpar_600" in page
