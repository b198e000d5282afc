"""`automl export RUN_DIR --trial N --out DIR`: a trial the run did not ship, exported as its own verified graph
from the run folder alone, reproduces that trial's configuration (its parameters, the run's folds and holdout)
and passes the parity gate. One tiny run (4 trials), shared by the module."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import automl
from automl.config.compose import load_run_config
from automl.errors import UserError
from automl.io import RunPaths
from automl.search import objective as obj
from automl.search.objective import candidate_from
from automl.stages.prepare import prepare
from tests.cli_runner import DATA, error_lines, run_cli

# two small runs and three exports (about 2 minutes): out of the default suite, in the README's test command
pytestmark = [pytest.mark.slow, pytest.mark.ci]
# 4 trials end the search; the generous clock keeps a loaded machine from skipping the boosting trials (the
# constraint test needs the unconstrained winner to be a boosting model, as it is when its trials complete)
ARGS = [f"data.path={DATA / 'slid_wages_600.csv'}", "task.target=wages", "task.metric=rmse", "budget.time_s=120",
        "budget.n_trials=4", "search.cv_folds=3", "export.refit_full=false",
        "estimators.include=[baseline,linear,hist_gradient_boosting]"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("export") / "run"
    p = run_cli(*ARGS, f"hydra.run.dir={run}", timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return run


def _other_trial(run: Path) -> pd.Series:
    board = pd.read_csv(run / "leaderboard.csv")
    shipped = json.loads((run / "manifest.json").read_text())["final"]
    members = {m["trial"] for m in shipped["members"]}
    ok = board[(board["status"] == "COMPLETE") & ~board["trial"].isin(members) & (board["family"] != "baseline")]
    assert len(ok), board
    return ok.iloc[0]


def test_export_a_trial_the_run_did_not_ship(run_dir: Path, tmp_path: Path):
    row = _other_trial(run_dir)
    n = int(row["trial"])
    out = tmp_path / f"trial_{n}"
    p = run_cli("export", str(run_dir), "--trial", str(n), "--out", str(out), timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"trial {n}" in p.stdout
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "COMPLETE" and m["final"]["trial"] == n and m["final"]["kind"] == "single"
    assert m["final"]["parity"]["passed"] and json.loads((out / "parity.json").read_text())["passed"]
    assert m["final"]["exported_from"]["trial"] == n
    assert m["final"]["exported_from"]["run_dir"] == str(run_dir.resolve())
    # the trial's own parameters, as the run's study recorded them
    study_params = m["final"]["exported_from"]["params"]
    assert study_params["family"] == row["family"] == m["final"]["family"]
    assert m["final"]["params"] == {k.split(".", 1)[1]: v for k, v in study_params.items()
                                    if k.startswith(row["family"] + ".")}
    assert m["final"]["cv_mean"] == pytest.approx(row["cv_mean"])
    card = (out / "model_card.md").read_text()
    assert card.startswith("# Model card") and f"Exported with `automl export`: trial {n} of" in card
    # the same rows, folds and holdout as the run: the data and the config are the run's own
    assert m["data"]["sha256"] == json.loads((run_dir / "manifest.json").read_text())["data"]["sha256"]
    assert json.loads((out / "config.json").read_text())["seed"] == json.loads(
        (run_dir / "config.json").read_text())["seed"]

    # the Python API gives the same model (in a fresh process: this one may have run OpenMP threads, after
    # which a fork can hang in libgomp, as the suite's earlier in-process fits showed)
    api = automl.load(run_dir).export_trial(n, tmp_path / "api")
    assert api.manifest.final["trial"] == n and api.manifest.final["parity"]["passed"]

    # the predictions come from that configuration: the same candidate fitted on the run's search rows
    # (refit_full=false: the shipped graph is the model fitted on them) predicts what the graph predicts
    cfg = load_run_config(run_dir)
    prep = prepare(cfg, RunPaths(tmp_path / "prep"))
    import optuna

    study = optuna.load_study(study_name=cfg.search.study_name,
                              storage=optuna.storages.JournalStorage(
                                  optuna.storages.journal.JournalFileBackend(str(run_dir / "study.journal"))))
    trial = next(t for t in study.trials if t.number == n)
    cand = candidate_from(trial.params, trial.user_attrs.get("best_rounds"))
    pipe = obj.build(prep.data, cand).fit(prep.data.X, prep.data.y)
    expected = pipe.predict(prep.X_hold)
    got = automl.load(out).predict(prep.X_hold).to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    shipped = automl.load(run_dir).predict(prep.X_hold).to_numpy()
    assert not np.allclose(got, shipped, rtol=1e-3), "the export should be trial N's model, not the run's"
    np.testing.assert_allclose(api.predict(prep.X_hold).to_numpy(), got, rtol=1e-6)


@pytest.mark.parametrize("case", ["unknown trial", "missing run folder"])
def test_export_user_errors(run_dir: Path, tmp_path: Path, case: str):
    src, where = ((run_dir, "--trial: trial 9999 is not in this run's study") if case == "unknown trial"
                  else (tmp_path / "nope", "RUN_DIR: "))
    p = run_cli("export", str(src), "--trial", "9999", "--out", str(tmp_path / "o"), timeout=60)
    assert p.returncode == 2, p.stderr[-2000:]
    lines = error_lines(p.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and where in lines[0], p.stderr
    assert not (tmp_path / "o").exists()


def test_export_refuses_a_failed_trial():
    import optuna

    from automl.stages.export_trial import find_trial

    study = optuna.create_study()
    ok = study.ask()
    study.tell(ok, 1.0)
    bad = study.ask()
    bad.set_user_attr("error", "ValueError: boom")
    study.tell(bad, state=optuna.trial.TrialState.FAIL)
    with pytest.raises(UserError, match=r"trial 1 did not complete \(FAIL: ValueError: boom\)"):
        find_trial(study, 1)
    assert find_trial(study, 0).number == 0


def test_export_help():
    p = run_cli("export", "--help", timeout=60)
    assert p.returncode == 0 and "--trial" in p.stdout and "--out" in p.stdout


def test_a_size_constraint_that_rules_out_the_winner_ships_another_model(run_dir: Path, tmp_path: Path):
    first = json.loads((run_dir / "manifest.json").read_text())["final"]
    winner_mb = (run_dir / "model.onnx").stat().st_size / 1e6
    assert first["deployment"]["model_mb"] == pytest.approx(winner_mb, abs=1e-4)
    assert first["deployment"]["machine"]["cores"] >= 1 and "single_row_calls" in first["deployment"]
    # gradient boosting graphs here are 35-120 kB, a linear model's 3 kB: the limit rules out the winner
    limit = 0.02
    board = pd.read_csv(run_dir / "leaderboard.csv")
    assert winner_mb > limit and first["family"] != "linear", board[["trial", "family", "cv_mean", "status", "error"]]
    run = tmp_path / "constrained"
    p = run_cli(*ARGS, f"constraints.max_model_mb={limit}", f"hydra.run.dir={run}", timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    final = json.loads((run / "manifest.json").read_text())["final"]
    # another model, and the shipped graph (the file itself) meets the limit
    assert (final["kind"], final["trial"]) != (first["kind"], first["trial"])
    assert (run / "model.onnx").stat().st_size / 1e6 <= limit
    c = final["constraints"]
    assert c["limits"] == {"max_model_mb": limit} and c["bound_by"] == ["max_model_mb"]
    refused = [r["plan"] for r in c["refused"]]
    # the best-ranked plan the run tried was refused for its size, measured on its exported graph
    assert refused and all(r["model_mb"] > limit for r in c["refused"])
    winner = "ensemble" if first["kind"] == "ensemble" else f"trial {first['trial']} "
    assert any(r.startswith(winner) for r in refused) or refused[0].startswith(f"trial {first['members'][0]['trial']} ")
    assert c["measured"]["model_mb"] <= limit and final["deployment"] == c["measured"]
    assert c["cv_cost"] >= 0  # the refused candidates ranked above the shipped one
    card = (run / "model_card.md").read_text()
    assert "Bound by max_model_mb" in card and "## Deployment cost" in card
    # the search steered on the same limit: each told trial carries its estimated excess (size, latency)
    board = pd.read_csv(run / "leaderboard.csv")
    measured = board[board["onnx_kb"].notna()]
    assert len(measured) and {"onnx_ms_p50", "front"} <= set(board.columns)
    import optuna

    study = optuna.load_study(study_name="automl", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(run / "study.journal"))))
    excess = {t.number: t.system_attrs.get("constraints") for t in study.trials if t.state.name == "COMPLETE"}
    for _, r in measured.iterrows():
        assert excess[int(r["trial"])][0] == pytest.approx(r["onnx_kb"] / 1e3 - limit, abs=1e-4)
