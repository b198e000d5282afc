"""End to end: a run with data.group_column, data.time_column and task.coverage ships a graph with the
conformal output, states the split in the card, and `automl predict` writes the new columns."""
from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from tests.cli_runner import run_cli


def _frame(n: int = 800) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    g = rng.integers(0, 80, n)
    x = rng.normal(size=(n, 2))
    p = 1 / (1 + np.exp(-(rng.normal(size=80)[g] + x[:, 0])))
    return pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "store_code": [f"S{v}" for v in g], "store": g,
                         "day": (pd.Timestamp("2023-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 365, n)),
                                                                              unit="D")).astype(str),
                         "y": np.where(rng.random(n) < p, "yes", "no"), "amount": 3 * x[:, 0] + rng.normal(size=n)})


@pytest.mark.slow
@pytest.mark.parametrize("target,extra,output", [
    ("y", ["data.group_column=store", "data.time_column=day", "search.time_gap=20"], "prediction_set"),
    ("amount", ["data.group_column=store"], "interval"),
])
def test_structured_run_ships_conformal_output(tmp_path, target, extra, output):
    csv = tmp_path / "d.csv"
    _frame().drop(columns=["amount" if target == "y" else "y"]).to_csv(csv, index=False)
    run = tmp_path / "run"
    p = run_cli(f"data.path={csv}", f"task.target={target}", "task.coverage=0.9", "budget.time_s=25",
                f"hydra.run.dir={run}", *extra, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    sess = ort.InferenceSession(str(run / "model.onnx"))
    assert output in [o.name for o in sess.get_outputs()]
    assert "store" not in [i.name for i in sess.get_inputs()]  # the group key is not a feature
    final = json.loads((run / "manifest.json").read_text())["final"]
    assert final["parity"]["conformal"]["passed"]
    assert abs(final["conformal_holdout"]["coverage"] - 0.9) < 0.1
    card = (run / "model_card.md").read_text()
    assert "Split (" in card and "measured coverage" in card
    out = tmp_path / "pred.csv"
    q = run_cli("predict", "--model", str(run / "model.onnx"), "--data", str(csv), "--out", str(out), timeout=60)
    assert q.returncode == 0, q.stderr[-2000:]
    cols = pd.read_csv(out).columns
    assert {"lower", "upper"} <= set(cols) if output == "interval" else {"in_set_no", "in_set_yes"} <= set(cols)
