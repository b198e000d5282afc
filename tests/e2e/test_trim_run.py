"""export.variants=[trim] end to end: the shipped forest's trimmed graph is made in the final refit, gated on
parity against the trimmed Python model, measured, and kept beside model.onnx with the same I/O contract."""
from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from tests.cli_runner import DATA, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.ci]  # one 20 s run; one trial, so a single forest ships (no ensemble)


def test_a_trimmed_forest_ships_beside_model_onnx(tmp_path: Path):
    run = tmp_path / "run"
    p = run_cli(f"data.path={DATA / 'medpar_600.csv'}", "task.target=died", "task.metric=roc_auc",
                "budget.time_s=20", "budget.n_trials=1", "search.cv_folds=3", "estimators.include=[random_forest]",
                "export.variants=[trim]", "export.variant_tol=0.02", f"hydra.run.dir={run}", timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    final = json.loads((run / "manifest.json").read_text())["final"]
    (v,) = final["variants"]
    assert v["kind"] == "trim" and v["kept"], v
    assert v["rounds"] < v["shipped_rounds"] and v["model_mb"] < v["shipped_model_mb"]
    assert v["full_score"] - v["holdout_score_python"] <= 0.02 and v["parity"]["passed"]
    small, full = onnx.load(str(run / v["file"])), onnx.load(str(run / "model.onnx"))
    assert [i.name for i in small.graph.input] == [i.name for i in full.graph.input]
    assert [o.name for o in small.graph.output] == [o.name for o in full.graph.output]
    assert {p.key for p in small.metadata_props} >= {"input_schema", "class_labels"}
    assert "Variant trim: kept as `model.trim.onnx`" in (run / "model_card.md").read_text()
