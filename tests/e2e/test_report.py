"""report.html of real runs: what it shows, that it fits the budget, and that it renders in a real
browser (headless Chromium) with no console errors and every image loaded."""
from __future__ import annotations

import json
import re
import shutil
import time

import pytest

from tests.browser import ARTIFACTS, needs_chromium, render
from tests.cli_runner import error_lines, run_cli
from tests.e2e.conftest import CASES


@pytest.fixture(scope="module")
def pages(runs) -> dict[str, tuple[str, float]]:
    """Each run's report as built with time to spare (in the run itself, a run that used its whole
    budget gets the tables without plots), and how long it took."""
    from automl.reporting.report import build_report

    out = {}
    for task, (run, _) in runs.items():
        t = time.perf_counter()
        out[task] = (build_report(run), time.perf_counter() - t)
    return out


@pytest.mark.parametrize("task", list(CASES))
def test_the_run_writes_its_report_within_the_budget(runs, task):
    run, _ = runs[task]
    m = json.loads((run / "manifest.json").read_text())
    assert (run / "report.html").read_text().startswith("<!doctype html>")
    assert m["timings"]["report_s"] < 5.0
    assert m["budget"]["used_s"] <= m["budget"]["time_s"] + m["budget"]["allowance_s"]


@pytest.mark.parametrize("task", list(CASES))
def test_report_shows_the_run(runs, pages, task):
    run, _ = runs[task]
    page, seconds = pages[task]
    assert seconds < 10.0  # a few seconds; the in-run report is bounded by the budget (test above)
    m = json.loads((run / "manifest.json").read_text())
    for section in ("Data", "Search", "Leaderboard", "Holdout", "Permutation feature importance", "ONNX model"):
        assert re.search(rf"<h[23][^>]*>{section}", page), section
    expected = ["optimisation history", "best score per family", "permutation importance"] + (
        ["predicted vs actual", "residuals"] if task == "regression"
        else ["confusion matrix", "ROC curve", "precision-recall curve"])
    for alt in expected:
        assert f'alt="{alt}"' in page, alt
    assert "http://" not in page and "https://" not in page  # self-contained: nothing fetched
    assert m["final"]["parity"]["max_diff"] is not None and "passed: max diff" in page
    assert m["final"]["latency"]["single_row_ms_median"] > 0
    pi = m["final"]["permutation_importance"]
    assert pi["columns_covered"] >= 1 and pi["importances"][0]["column"] in page
    # the split used and why (issue 18): the card says it for every run, random rows included
    card = (run / "model_card.md").read_text()
    assert "Split (random)" in card and "Why:" in card
    if task != "regression":  # calibration chosen on OOF rows: reliability before/after, Brier score and ECE
        cal = m["final"]["calibration"]
        assert {"holdout_before", "holdout_after", "oof_log_loss"} <= set(cal), cal
        assert 'alt="reliability diagram"' in page and "Brier score" in page and "calibration error" in page
        assert "## Probability calibration" in card and "Brier score" in card


def test_without_time_left_the_report_keeps_the_tables_and_says_the_plots_were_left_out(runs):
    from automl.reporting.report import build_report

    run, _ = runs["binary"]
    t = time.perf_counter()
    page = build_report(run, time_left_s=0.5)
    assert time.perf_counter() - t < 2.0
    assert "<img" not in page and "Plots were left out" in page and "Leaderboard" in page


def test_automl_report_rebuilds_it_and_a_folder_without_a_run_is_one_line_exit_2(runs, tmp_path):
    run, _ = runs["regression"]
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "report.html").unlink()
    p = run_cli("report", str(copy))
    assert p.returncode == 0, p.stderr[-2000:]
    assert 'alt="residuals"' in (copy / "report.html").read_text()
    p = run_cli("report", str(tmp_path / "nothing"))
    assert p.returncode == 2 and len(error_lines(p.stderr)) == 1 and "RUN_DIR" in p.stderr


@needs_chromium
@pytest.mark.parametrize("task", list(CASES))
def test_report_renders_in_headless_chromium_with_no_errors_and_every_image_loaded(pages, tmp_path, task):
    report = tmp_path / "report.html"
    report.write_text(pages[task][0])
    shot = ARTIFACTS / f"report_{task}.png"
    seen = render(report, shot)
    assert not seen["errors"], seen["errors"]
    images = seen["images"]
    assert len(images) >= 4, images
    assert all(ok for _, ok in images), [alt for alt, ok in images if not ok]
    assert "Permutation feature importance" in seen["text"]
    assert shot.stat().st_size > 10_000


def test_a_failed_run_still_gets_a_report_that_says_why(runs, tmp_path):
    """No model shipped: the page shows the error, the data and the search, and no holdout plots."""
    from automl.reporting.report import build_report

    run, _ = runs["binary"]
    copy = tmp_path / "failed"
    shutil.copytree(run, copy)
    m = json.loads((copy / "manifest.json").read_text())
    m.update(status="FAILED", error="no candidate passed refit, export and the parity gate", final={})
    (copy / "manifest.json").write_text(json.dumps(m))
    for f in ("model.onnx", "parity.json", "holdout_predictions.npy", "holdout_labels.npy"):
        (copy / f).unlink()
    page = build_report(copy)
    assert "no candidate passed refit, export and the parity gate" in page and "FAILED" in page
    assert 'alt="optimisation history"' in page and 'alt="ROC curve"' not in page
    assert "No model was shipped" in page and "ONNX model</h2>" not in page


def test_plots_stop_when_the_time_left_runs_out_and_the_page_names_what_was_left_out(runs, monkeypatch):
    """A slow machine: each plot group checks the clock, so the report stays within the time it was given."""
    from automl.reporting import report

    run, _ = runs["regression"]
    clock = iter(range(0, 10_000))  # every perf_counter call moves the clock on by one second
    monkeypatch.setattr(report.time, "perf_counter", lambda: float(next(clock)))
    page = report.build_report(run, time_left_s=3.0)
    assert 'alt="residuals"' not in page and "Left out to stay within the run's time budget" in page
    assert "holdout curves" in page and "Leaderboard" in page
