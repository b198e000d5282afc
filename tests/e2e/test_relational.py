"""Several tables: point-in-time aggregates, config errors, and raw tables in -> predictions out (parity)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from automl.config.schema import DataConfig, RelationshipConfig, TableConfig
from automl.errors import UserError
from tests.cli_runner import error_lines, run_cli
from tests.conftest import importable, require
from tests.data.make_mock_customer import make

require("featuretools", importable("featuretools"), "several tables are joined by featuretools' deep feature synthesis")


def _config(t: dict[str, Path], cutoff_round: str = "") -> DataConfig:
    return DataConfig(
        path=str(t["sessions"]), target_table="sessions", cutoff_round=cutoff_round,
        tables={"customers": TableConfig(str(t["customers"]), "customer_id", "join_date"),
                "sessions": TableConfig(str(t["sessions"]), "session_id", "session_start"),
                "transactions": TableConfig(str(t["transactions"]), "transaction_id", "transaction_time"),
                "products": TableConfig(str(t["products"]), "product_id")},
        relationships=[RelationshipConfig("customers.customer_id", "sessions.customer_id"),
                       RelationshipConfig("sessions.session_id", "transactions.session_id"),
                       RelationshipConfig("products.product_id", "transactions.product_id")])


def test_no_aggregate_uses_rows_after_the_cutoff(tmp_path):
    """A transaction added in the future of some sessions changes none of their features, but does change
    the features of the same customer's sessions that start after it (so the check can fail)."""
    from automl.data.relational import build_flat_frame

    t = make(tmp_path / "tables", sizes={"n_customers": 4, "n_products": 3, "n_sessions": 30, "n_transactions": 300})
    before = build_flat_frame(_config(t), "big_session", tmp_path / "run_a")
    sessions = pd.read_csv(t["sessions"], parse_dates=["session_start"]).sort_values("session_start")
    pivot = sessions.iloc[len(sessions) // 2]  # a session in the middle of the timeline
    later_same_customer = sessions[(sessions.customer_id == pivot.customer_id)
                                   & (sessions.session_start > pivot.session_start)]
    assert len(later_same_customer), "the test needs a later session of the same customer"
    when = pivot.session_start + pd.Timedelta(seconds=1)
    tx = pd.read_csv(t["transactions"])
    new = {"transaction_id": tx.transaction_id.max() + 1, "session_id": int(pivot.session_id),
           "transaction_time": str(when), "product_id": 1, "amount": 10_000.0}
    pd.concat([tx, pd.DataFrame([new])], ignore_index=True).to_csv(t["transactions"], index=False)
    after = build_flat_frame(_config(t), "big_session", tmp_path / "run_b")

    agg = [d["name"] for d in json.loads((tmp_path / "run_a" / "relational" / "layout.json").read_text())["features"]]
    assert "SUM(transactions.amount)" in agg and "customers.MAX(transactions.amount)" in agg
    a, b = before.set_index("session_id")[agg], after.set_index("session_id")[agg]
    starts = sessions.set_index("session_id").session_start
    past = starts.index[starts < when]  # cutoff before the new transaction: nothing may move
    pd.testing.assert_frame_equal(a.loc[past], b.loc[past])
    moved = b.loc[later_same_customer.session_id, "customers.MAX(transactions.amount)"]
    assert (moved == 10_000.0).all(), moved


def test_layout_errors_name_the_field(tmp_path):
    from automl.data.relational import layout_from_config, read_frames, validate_layout

    t = make(tmp_path, sizes={"n_customers": 3, "n_products": 2, "n_sessions": 10, "n_transactions": 40})
    cases = [
        (lambda c: setattr(c, "target_table", "orders"), "data.target_table"),
        (lambda c: setattr(c.relationships[0], "parent", "clients.customer_id"), "data.relationships[0].parent"),
        (lambda c: setattr(c.relationships[1], "parent", "sessions.device"), "data.relationships[1].parent"),
        (lambda c: setattr(c.relationships[2], "child", "transactions.sku"), "data.relationships[2].child"),
        (lambda c: setattr(c.tables["transactions"], "time_index", "ts"), "data.tables.transactions.time_index"),
        (lambda c: setattr(c.tables["transactions"], "index", "session_id"), "data.tables.transactions.index"),
        (lambda c: c.relationships.pop(2), "data.relationships"),
        (lambda c: setattr(c, "aggregates", ["sum", "avg"]), "data.aggregates"),
        (lambda c: setattr(c, "cutoff_round", "soon"), "data.cutoff_round"),
    ]
    for mutate, field in cases:
        cfg = _config(t)
        mutate(cfg)
        layout = layout_from_config(cfg)
        with pytest.raises(UserError) as e:
            validate_layout(layout)
            validate_layout(layout, read_frames(layout), "big_session")
        assert e.value.where == field, (field, str(e.value))


def test_bad_table_config_is_one_line_exit_2(tmp_path):
    t = make(tmp_path, sizes={"n_customers": 3, "n_products": 2, "n_sessions": 10, "n_transactions": 40})
    p = run_cli("data=mock_customer", "task.target=big_session", f"data.tables.sessions.path={t['sessions']}",
                "data.tables.transactions.time_index=ts", f"hydra.run.dir={tmp_path / 'run'}", timeout=120)
    assert p.returncode == 2, p.stderr[-2000:]
    lines = error_lines(p.stderr)
    assert len(lines) == 1 and "data.tables.transactions.time_index" in lines[0], p.stderr
    assert "Traceback" not in p.stderr, p.stderr


def test_several_tables_end_to_end_raw_tables_in_predictions_out(tmp_path):
    """From config on raw tables: run, then `automl predict --tables`; the Python pipeline's holdout
    predictions (on the flat frame) equal ONNX predictions computed from the raw tables."""
    from automl.data.split import holdout_split
    from automl.data.target import prepare_target

    t = make(tmp_path / "tables")
    run = tmp_path / "run"
    over = [f"data.tables.{n}.path={p}" for n, p in t.items()]
    p = run_cli("data=mock_customer", "task.target=big_session", *over, "budget.time_s=20", "budget.n_trials=4",
                "search.cv_folds=3", "export.refit_full=false",
                "estimators.include=[baseline,linear,hist_gradient_boosting]", f"hydra.run.dir={run}", timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads((run / "manifest.json").read_text())
    assert m["status"] == "COMPLETE", m["error"]
    rel = m["relational"]
    assert rel["passed"] and rel["max_abs_diff"] == 0 and rel["onnx_max_abs_diff"] <= 1e-6, rel
    assert rel["used"], "the model takes no synthesised feature"
    assert (run / "relational" / "features.json").exists() and not list(run.rglob("*.pkl"))
    json.loads((run / "relational" / "features.json").read_text())  # JSON definitions, not pickle
    card = (run / "model_card.md").read_text()
    assert "## Features from related tables" in card and "point in time" in card
    for name in rel["used"]:
        assert f"| `{name}` |" in card

    out = tmp_path / "pred.csv"
    p = run_cli("predict", "--model", str(run), "--tables", *[f"{n}={q}" for n, q in t.items()], "--out", str(out),
                timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    pred = pd.read_csv(out)
    sessions = pd.read_csv(t["sessions"])
    assert len(pred) == len(sessions)
    y, classes = prepare_target(sessions, "big_session", "binary")
    _, ho = holdout_split(y, "binary", 0.2, 0)
    python_pipeline = np.load(run / "holdout_predictions.npy")
    onnx_from_raw = pred[[f"proba_{c}" for c in classes]].to_numpy()[ho]
    np.testing.assert_allclose(onnx_from_raw, python_pipeline.reshape(len(ho), -1)[:, -len(classes):], atol=1e-5)

    # new rows only (--data is the new target table, without its target); other tables from training
    new = tmp_path / "new_sessions.csv"
    sessions.drop(columns=["big_session"]).tail(25).to_csv(new, index=False)
    p = run_cli("predict", "--model", str(run), "--data", str(new), "--out", str(tmp_path / "p2.csv"), timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    np.testing.assert_allclose(pd.read_csv(tmp_path / "p2.csv")["proba_1"].to_numpy(),
                               pred["proba_1"].to_numpy()[-25:], atol=1e-6)
    p = run_cli("predict", "--model", str(run), "--tables", "orders=x.csv", "--out", str(tmp_path / "p3.csv"))
    assert p.returncode == 2 and "--tables" in p.stderr
