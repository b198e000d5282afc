"""`automl compare`: the job table, the configuration a sweep varied, and average ranks over datasets."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from automl.commands.compare import main
from automl.errors import UserError
from automl.reporting.sweep_rows import collect


def _job(root, num, data, seed, sampler, holdout, status="COMPLETE", maximize=True):
    d = root / f"{num}_{data}"
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(
        f"- +experiment={data}\n- seed={seed}\n- search.sampler={sampler}\n- budget.time_s=30\n")
    final = {"family": "lightgbm", "cv_mean": holdout + 0.01, "holdout_score": holdout} if status == "COMPLETE" else {}
    (d / "manifest.json").write_text(json.dumps({
        "data": {"name": data}, "seed": seed, "task": "binary", "metric": "roc_auc" if maximize else "rmse",
        "greater_is_better": maximize, "status": status, "final": final,
        "search": {"trials_total": 12, "completed": 10, "failed": 1, "n_workers": 1},
        "budget": {"time_s": 30, "used_s": 28.5}, "timings": {"search_s": 20.0}}))
    pd.DataFrame({"rank": [1, 2], "trial": [3, 1], "family": ["xgboost", "linear"],
                  "cv_mean": [0.7, 0.6]}).to_csv(d / "leaderboard.csv", index=False)


def test_compare_ranks_configurations_within_dataset_and_seed(tmp_path, capsys):
    n = 0
    scores = {("a", 0): (0.80, 0.70), ("a", 1): (0.81, 0.71), ("b", 0): (0.60, 0.65), ("b", 1): (0.62, 0.61)}
    for (data, seed), (tpe, rnd) in scores.items():
        _job(tmp_path, n, data, seed, "tpe", tpe)
        _job(tmp_path, n + 1, data, seed, "random", rnd)
        n += 2
    df = collect(tmp_path)
    # the dataset-picking override and the seed are not configurations; the constant budget is not either
    assert set(df["config"]) == {"search.sampler=tpe", "search.sampler=random"}
    assert list(df["best_family"].unique()) == ["xgboost"] and df["trials_per_min"].iloc[0] == 36.0
    assert main([str(tmp_path)]) == 0
    md = (tmp_path / "compare.md").read_text()
    assert md in capsys.readouterr().out
    ranks = md.split("## Average rank")[1]
    # tpe wins 3 of 4 (dataset, seed) pairs: mean rank (1+1+2+1)/4 = 1.25; random 1.75
    assert "| search.sampler=tpe | 1.25 | 4 |" in ranks and "| search.sampler=random | 1.75 | 4 |" in ranks
    assert len(pd.read_csv(tmp_path / "compare.csv")) == 8


def test_a_failed_job_ranks_last_and_one_configuration_is_not_ranked(tmp_path):
    _job(tmp_path, 0, "a", 0, "tpe", 0.5)
    _job(tmp_path, 1, "a", 0, "random", None, status="FAILED")
    main([str(tmp_path)])
    assert "| search.sampler=tpe | 1 |" in (tmp_path / "compare.md").read_text()
    single = tmp_path / "single"
    _job(single, 0, "a", 0, "tpe", 0.5)
    _job(single, 1, "a", 1, "tpe", 0.6)
    main([str(single)])
    assert "nothing to rank" in (single / "compare.md").read_text()


def test_a_folder_without_jobs_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no job folders"):
        main([str(tmp_path)])


def test_the_sweep_callback_writes_summary_csv_from_the_same_rows(tmp_path):
    """summary.csv keeps its own columns (`model` is the shipped family), in launch order."""
    from types import SimpleNamespace

    from automl.reporting.sweep import SweepSummary

    for n in (0, 2, 10):
        _job(tmp_path, n, "a", n, "tpe", 0.5 + n / 100)
    config = SimpleNamespace(hydra=SimpleNamespace(sweep=SimpleNamespace(dir=str(tmp_path))))
    SweepSummary().on_multirun_end(config)
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary.columns) == ["job", "data", "seed", "task", "metric", "status", "model", "cv", "holdout",
                                     "trials", "time_s", "budget_s"]
    assert list(summary["job"]) == ["0_a", "2_a", "10_a"] and list(summary["model"]) == ["lightgbm"] * 3
    assert (tmp_path / "report.html").read_text().startswith("<!doctype html>")
