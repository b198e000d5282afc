"""search.objectives=[metric,size] end to end: a multi-objective study, the leaderboard's front is the study's
own Pareto front, the best-score member of it ships through the parity gate, and report.html plots the front."""
from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest

from automl.search.storage import open_storage
from tests.cli_runner import DATA, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.ci]  # one 20 s run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("objectives") / "run"
    # search.rescore=0: the front's best member by CV is what ships (re-scoring would rank by a second estimate)
    p = run_cli(f"data.path={DATA / 'medpar_600.csv'}", "task.target=died", "task.metric=roc_auc",
                "budget.time_s=20", "search.cv_folds=3", "search.rescore=0", "search.objectives=[metric,size]",
                "estimators.include=[baseline,linear,random_forest,hist_gradient_boosting]",
                f"hydra.run.dir={run}", timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    return run


def test_the_front_is_the_studys_and_its_best_member_ships(run_dir: Path):
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["status"] == "COMPLETE" and m["search"]["objectives"] == ["metric", "size"]
    study = optuna.load_study(study_name="automl", storage=open_storage("", run_dir / "study.journal"))
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) >= 4 and not any(t.state.name == "PRUNED" and t.user_attrs.get("status") == "PRUNED"
                                      for t in study.trials)  # no pruning in a multi-objective study
    for t in done:  # the size objective is the trial's own search graph
        assert t.user_attrs["objective_source"] == "measured"
        assert t.values[1] == pytest.approx(t.user_attrs["onnx_bytes"] / 1e6)
    front = {t.number for t in study.best_trials}
    board = pd.read_csv(run_dir / "leaderboard.csv")
    marked = {int(n) for n in board.loc[board["front"].astype(bool), "trial"]}
    assert marked == front and 1 <= len(front) < len(done)

    final = m["final"]
    best = max((t for t in done if t.number in front), key=lambda t: t.values[0])
    assert final["kind"] == "single" and final["trial"] == best.number  # no ensemble: it is on no front
    assert final["parity"]["passed"] and json.loads((run_dir / "parity.json").read_text())["passed"]
    card = (run_dir / "model_card.md").read_text()
    assert "Objectives (search.objectives): metric, size" in card and "pruning was off" in card

    html = (run_dir / "report.html").read_text()
    assert "id=deployment" in html
    if "Pareto front: CV against graph size" not in html:  # a loaded machine: the run's budget had no room for it
        assert "rebuild with <code>automl report RUN_DIR</code>" in html, html[-800:]  # and says so
        p = run_cli("report", str(run_dir), timeout=120)  # what report.html tells the user to run
        assert p.returncode == 0, p.stderr[-2000:]
        html = (run_dir / "report.html").read_text()
    assert "Pareto front: CV against graph size" in html and "Pareto front: CV against single-row p50" in html
