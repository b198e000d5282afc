"""Reproducible mode: a fixed seed, a trial-count budget and one worker give the same leaderboard and
the same predictions, and the manifest says so."""
from __future__ import annotations

import json

import pandas as pd

from tests.cli_runner import DATA, run_cli


def test_two_runs_give_the_same_leaderboard_and_predictions(tmp_path):
    outs = []
    for name in ("a", "b"):
        run = tmp_path / name
        p = run_cli(f"data.path={DATA / 'penguins.csv'}", "task.target=species", "budget.time_s=90",
                    "budget.n_trials=6", "search.n_workers=1", "search.cv_folds=3",
                    "estimators.include=[baseline,linear,hist_gradient_boosting]", "seed=7",
                    f"hydra.run.dir={run}", timeout=200)
        assert p.returncode == 0, p.stderr[-2000:]
        pred = tmp_path / f"{name}.csv"
        p = run_cli("predict", "--model", str(run), "--data", str(DATA / "penguins.csv"), "--out", str(pred))
        assert p.returncode == 0, p.stderr
        outs.append((run, pred))
    cols = ["trial", "family", "cv_mean", "status", "params"]
    a, b = (pd.read_csv(r / "leaderboard.csv")[cols] for r, _ in outs)
    pd.testing.assert_frame_equal(a, b)
    assert outs[0][1].read_bytes() == outs[1][1].read_bytes()
    manifest = json.loads((outs[0][0] / "manifest.json").read_text())
    assert manifest["reproducible"] == {"reproducible": True, "why_not": []}
