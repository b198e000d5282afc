"""A stacked ensemble end to end: where each family is right about other classes, the level-2 stacker's
per-class weights beat one Caruana weight per member on nested OOF scores; the stack ships as one graph
through the parity gate, and the manifest, card, leaderboard and `automl predict` agree."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest

from automl.export.contract import feeds_from_frame
from tests.cli_runner import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.ci]  # two ~30 s runs


def _data(path: Path) -> Path:
    """Class a is a noisy linear rule on x0 + x1; b against c is an XOR of x2 and x3, which k-NN sees and a
    linear model cannot."""
    rng = np.random.default_rng(0)
    n = 1500
    x = rng.normal(size=(n, 4))
    is_a = (x[:, 0] + x[:, 1] + 0.8 * rng.normal(size=n)) > 0.8
    xor = (x[:, 2] > 0) ^ (x[:, 3] > 0)
    df = pd.DataFrame(x, columns=["x0", "x1", "x2", "x3"])
    df["y"] = np.where(is_a, "a", np.where(xor, "b", "c"))
    df.to_csv(path, index=False)
    return path


def _run(tmp_path: Path, name: str, *extra: str) -> Path:
    run = tmp_path / name
    p = run_cli(f"data.path={tmp_path / 'stack.csv'}", "task.target=y", "task.metric=log_loss",
                "estimators.include=[linear,knn]", "budget.time_s=40", "budget.n_trials=14", "search.n_workers=1",
                f"hydra.run.dir={run}", *extra, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    return run


def test_a_stack_ships_where_per_class_weights_win_and_is_off_with_search_stacking_false(tmp_path: Path):
    _data(tmp_path / "stack.csv")
    run = _run(tmp_path, "stacked")
    manifest = json.loads((run / "manifest.json").read_text())
    final = manifest["final"]
    st = final["stacker"]
    assert final["kind"] == "ensemble" and st["kind"] == "logistic" and len(final["members"]) >= 2
    assert st["nested_oof_score"] < st["caruana_oof_score"]  # log loss: lower wins
    assert final["cv_mean"] == st["nested_oof_score"] and manifest["ensemble_selection"]["stack"] == st
    assert final["parity"]["passed"] and final["holdout_score_onnx"] == pytest.approx(final["holdout_score"], abs=1e-4)
    assert "A **stacked** ensemble" in (run / "model_card.md").read_text()
    assert all("weight" not in m for m in final["members"])  # its stacker combines them
    board = pd.read_csv(run / "leaderboard.csv")
    assert board.loc[board["trial"] == "ensemble", "origin"].str.startswith("stacked").all()

    # the shipped graph: the stacker's nodes, and its probabilities are a distribution
    sess = ort.InferenceSession(str(run / "model.onnx"))
    assert any(n.name == "stack_matmul" for n in onnx.load(str(run / "model.onnx")).graph.node)
    rows = pd.read_csv(tmp_path / "stack.csv").drop(columns=["y"]).head(50)
    schema = json.loads(sess.get_modelmeta().custom_metadata_map["input_schema"])
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds_from_frame(rows, schema)), strict=True))
    assert np.allclose(out["probabilities"].sum(axis=1), 1.0, atol=1e-5)

    off = json.loads((_run(tmp_path, "caruana", "search.stacking=false") / "manifest.json").read_text())
    assert "stacker" not in off["final"] and "stack" not in (off.get("ensemble_selection") or {})
