"""One decision rule: with a tuned binary decision threshold, report.html's confusion matrix and
model_card.md's per-class table both count labels from evaluation.metrics.labels_from_proba (the rule
the graph's `label` output applies), not the most probable class."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from automl.evaluation.metrics import labels_from_proba, per_class_report
from automl.io import RunPaths
from automl.manifest import Manifest
from automl.reporting.curves import confusion
from automl.reporting.model_card import render
from automl.reporting.report import build_report

CLASSES = ["no", "yes"]
THRESHOLD = 0.3


def _holdout() -> tuple[np.ndarray, np.ndarray]:
    """200 rows whose positive probability is often between the threshold and 0.5."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p1 = np.clip(0.25 + 0.3 * y + rng.normal(0, 0.15, 200), 0.01, 0.99)
    return y, np.column_stack([1 - p1, p1]).astype(np.float32)


def _run_folder(root, y: np.ndarray, proba: np.ndarray) -> tuple[RunPaths, Manifest, dict, pd.DataFrame]:
    paths = RunPaths(root)
    np.save(paths.holdout_predictions, proba)
    np.save(paths.holdout_labels, y)
    final = {"kind": "single", "trial": 3, "family": "linear", "preprocessing": "standard", "params": {"C": 1.0},
             "cv_mean": 0.8, "holdout_score": 0.7, "decision_threshold": THRESHOLD, "timings": {"refit_s": 0.1},
             "holdout_per_class": per_class_report(y, proba, CLASSES, THRESHOLD)}  # as automl/refit.py does
    manifest = {"task": "binary", "metric": "f1", "greater_is_better": True, "target": "flag", "status": "COMPLETE",
                "seed": 0, "classes": CLASSES, "data": {"name": "toy", "path": "toy.csv"},
                "budget": {"time_s": 60, "used_s": 10.0},
                "search": {"sampler": "tpe", "cv_folds": 3, "search_rows": 800, "holdout_rows": 200, "completed": 5,
                           "failed": 0, "pruned": 0, "stopped_because": "budget", "families": ["linear"]},
                "final": final}
    manifest = Manifest.from_json(manifest)
    profile = {"n_rows": 1000, "n_columns": 2, "n_features": 1, "duplicate_rows": 0, "warnings": [],
               "roles": {"numeric": ["x"]}, "target": {"classes": CLASSES, "imbalance_ratio": 1.0},
               "columns": [{"name": "x", "role": "numeric", "dtype": "float64", "missing_pct": 0.0}]}
    leaderboard = pd.DataFrame([{"rank": 1, "trial": 3, "family": "linear", "preprocessing": "standard",
                                 "cv_mean": 0.8, "cv_std": 0.01, "holdout": 0.7, "ensemble_weight": None,
                                 "fit_s": 0.1, "status": "COMPLETE"}])
    leaderboard.to_csv(paths.leaderboard, index=False)
    return paths, manifest, profile, leaderboard


def _report_matrix(page: str) -> np.ndarray:
    table = re.search(r"<table class=confusion>(.*?)</table>", page)
    assert table, "report.html shows no confusion matrix counts"
    rows = re.findall(r"<tr><th>[^<]*</th>((?:<td>\d+</td>)+)</tr>", table.group(1))
    return np.array([[int(v) for v in re.findall(r"<td>(\d+)</td>", r)] for r in rows])


def _card_table(card: str) -> pd.DataFrame:
    lines = card.split("| class | precision | recall | f1 | support | predicted |")[1].strip().splitlines()[1:]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines if line.startswith("|")]
    return pd.DataFrame(cells, columns=["class", "precision", "recall", "f1", "support", "predicted"])


def test_report_and_card_count_labels_at_the_tuned_threshold(tmp_path):
    pytest.importorskip("matplotlib")
    y, proba = _holdout()
    paths, manifest, profile, leaderboard = _run_folder(tmp_path, y, proba)
    expected = confusion(y, labels_from_proba(proba, THRESHOLD), 2)
    argmax = confusion(y, proba.argmax(axis=1), 2)
    assert not np.array_equal(expected, argmax)  # the threshold changes the labels of this holdout

    page = build_report(paths.root, manifest)
    np.testing.assert_array_equal(_report_matrix(page), expected)
    assert f"yes where p(yes) &gt;= {THRESHOLD:g}" in page  # the rule is named beside the counts

    card = _card_table(render(manifest, profile, leaderboard))
    assert list(card["class"]) == CLASSES
    np.testing.assert_array_equal(card["support"].astype(int), expected.sum(axis=1))
    np.testing.assert_array_equal(card["predicted"].astype(int), expected.sum(axis=0))
    recall = np.diag(expected) / expected.sum(axis=1)
    np.testing.assert_allclose(card["recall"].astype(float), recall.round(4))


def test_without_a_threshold_the_report_counts_the_most_probable_class(tmp_path):
    pytest.importorskip("matplotlib")
    y, proba = _holdout()
    paths, manifest, _, _ = _run_folder(tmp_path, y, proba)
    manifest.final["decision_threshold"] = None
    page = build_report(paths.root, manifest)
    np.testing.assert_array_equal(_report_matrix(page), confusion(y, proba.argmax(axis=1), 2))
    assert "most probable class" in page
