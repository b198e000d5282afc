"""The sweep comparison page (report.html at a --multirun sweep root), built from job folders that are
copies of this session's real runs with the holdout scores set so the expected ranks are known, and
rendered in headless Chromium."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.browser import ARTIFACTS, needs_chromium, render
from tests.cli_runner import run_cli


def _job(src: Path, dest: Path, sampler: str, holdout: float | None) -> None:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("report.html", "study.journal*", "oof"))
    m = json.loads((dest / "manifest.json").read_text())
    if holdout is None:
        m["status"], m["error"], m["final"] = "FAILED", "no trial completed within the budget", {}
    else:
        m["final"]["holdout_score"] = holdout
    (dest / "manifest.json").write_text(json.dumps(m))
    overrides = [f"data.path={m['data']['path']}", f"task.target={m['target']}", f"search.sampler={sampler}"]
    (dest / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))


@pytest.fixture(scope="module")
def sweep(runs, tmp_path_factory) -> Path:
    """3 datasets x 2 samplers: tpe wins on binary, random on multiclass, and random fails on regression,
    so the average ranks are tpe (1 + 2 + 1) / 3 and random (2 + 1 + 2) / 3."""
    root = tmp_path_factory.mktemp("sweep")
    n = 0
    for task in ("binary", "multiclass", "regression"):
        run = runs[task][0]
        m = json.loads((run / "manifest.json").read_text())
        h = m["final"]["holdout_score"]
        worse = h - 0.05 if m["greater_is_better"] else h + 0.05
        tpe, rnd = (h, worse) if task == "binary" else (worse, h) if task == "multiclass" else (h, None)
        for sampler, score in (("tpe", tpe), ("random", rnd)):
            _job(run, root / f"{n}_{m['data']['name']}", sampler, score)
            n += 1
    return root


def test_automl_report_on_a_sweep_folder_writes_the_comparison_page_with_average_ranks(sweep):
    p = run_cli("report", str(sweep), timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    page = (sweep / "report.html").read_text()
    assert 'alt="average rank per configuration"' in page
    for name in ("medpar_600", "penguins", "slid_wages_600"):
        assert f'alt="holdout on {name}"' in page
    # the rank table: tpe first with 4/3, random 5/3
    i_tpe, i_rnd = page.index("<td>search.sampler=tpe</td><td>1.333</td>"), page.index(
        "<td>search.sampler=random</td><td>1.667</td>")
    assert i_tpe < i_rnd
    assert "http://" not in page and "https://" not in page


@needs_chromium
def test_sweep_report_renders_in_headless_chromium_with_no_errors_and_every_image_loaded(sweep):
    if not (sweep / "report.html").exists():
        from automl.reporting.sweep_report import write_sweep_report

        assert write_sweep_report(sweep)
    shot = ARTIFACTS / "report_sweep.png"
    seen = render(sweep / "report.html", shot)
    assert not seen["errors"], seen["errors"]
    assert len(seen["images"]) == 4, seen["images"]  # average ranks + one chart per dataset
    assert all(ok for _, ok in seen["images"]), seen["images"]
    assert "Average rank across datasets" in seen["text"] and "FAILED" in seen["text"]
    assert shot.stat().st_size > 10_000
