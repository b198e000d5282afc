"""A run whose data is a SQL source, end to end through the CLI: a SQLite table read whole, a query
forced onto the scan-and-sample path (data.max_rows), `automl predict --query` equal to scoring the same
rows from CSV, the password masked everywhere in the run folder, and user errors as one line with exit
code 2. PostgreSQL too when AUTOML_TEST_PG_URL is set."""

from __future__ import annotations

import json
import os
import sqlite3
import uuid

import numpy as np
import pandas as pd
import pytest

from tests.cli_runner import error_lines, run_cli
from tests.e2e.test_large_data import _data

# the trial cap ends each run (the SQL read, the scan and predict are what these tests check, not the search)
FAST = ["estimators.include=[baseline,linear]", "search.cv_folds=3", "budget.time_s=15", "budget.n_trials=2"]
PG_URL = os.environ.get("AUTOML_TEST_PG_URL", "")


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    root = tmp_path_factory.mktemp("sql")
    df = _data(3000)
    with sqlite3.connect(root / "d.db") as con:
        df.to_sql("rows", con, index=False)
    return root, f"sqlite:///{root / 'd.db'}", df


def _manifest(run) -> dict:
    return json.loads((run / "manifest.json").read_text())


def test_a_sqlite_table_is_read_whole(db):
    root, url, df = db
    run = root / "whole"
    p = run_cli(f"data.path={url}", "data.table=rows", "task.target=y", *FAST, f"hydra.run.dir={run}", timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    m = _manifest(run)
    assert m["status"] == "COMPLETE" and "sampling" not in m
    assert m["data"]["format"] == "sql" and m["data"]["table"] == "rows" and m["data"]["rows"] == len(df)
    assert "every row" in m["data"]["sha256_of"] and len(m["data"]["sha256"]) == 64


def test_a_query_forced_onto_the_scan_path_and_predict_from_it(db, tmp_path):
    root, url, df = db
    run = root / "scan"
    p = run_cli(f"data.path={url}", "data.query='SELECT x1, x2, grp, y FROM rows'", "data.max_rows=2200",
                "task.target=y", *FAST, f"hydra.run.dir={run}", timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    m = _manifest(run)
    s = m["sampling"]
    assert s["source"] == {"format": "sql", "url": url, "read": "data.query"} and s["rows_total"] == len(df)
    assert s["holdout_rows"] == 440 and m["data"]["query"] == "SELECT x1, x2, grp, y FROM rows"
    prof = json.loads((run / "profile.json").read_text())
    assert prof["streamed"]["rows_scanned"] == len(df)
    assert prof["target"]["classes"] == {k: int(v) for k, v in df["y"].value_counts().items()}

    # predict: the same rows from the database (in chunks of 97) and from a CSV give the same output
    df.drop(columns="y").to_csv(tmp_path / "new.csv", index=False)
    a = run_cli("predict", "--model", str(run), "--data", url, "--query", "SELECT * FROM rows",
                "--chunk-rows", "97", "--out", str(tmp_path / "a.parquet"), timeout=120)
    assert a.returncode == 0, a.stderr[-2000:]
    b = run_cli("predict", "--model", str(run), "--data", str(tmp_path / "new.csv"),
                "--out", str(tmp_path / "b.parquet"), timeout=120)
    assert b.returncode == 0, b.stderr[-2000:]
    pa_, pb = pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet")
    assert len(pa_) == len(df)
    pd.testing.assert_frame_equal(pa_, pb)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["data.table=nope"], "data.table"),
        (["data.query='SELECT nope FROM rows'"], "data.query"),
        (["data.table=rows", "data.query='SELECT * FROM rows'"], "data.query"),
        ([], "data.query"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(db, args, field):
    root, url, _ = db
    p = run_cli(f"data.path={url}", *args, "task.target=y", *FAST, f"hydra.run.dir={root / 'err'}", timeout=60)
    lines = error_lines(p.stderr)
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {field}:"), p.stderr[-2000:]


def test_unknown_target_and_bad_driver_are_one_line(db):
    root, url, _ = db
    p = run_cli(f"data.path={url}", "data.table=rows", "task.target=nope", *FAST,
                f"hydra.run.dir={root / 'err2'}", timeout=60)
    assert p.returncode == 2 and error_lines(p.stderr)[0].startswith("error: task.target:"), p.stderr[-2000:]
    p = run_cli("data.path='mysql+nosuchdriver://me:s3cret@localhost/db'", "data.table=rows", "task.target=y",
                *FAST, f"hydra.run.dir={root / 'err3'}", timeout=60)
    lines = error_lines(p.stderr)
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: data.path:"), p.stderr[-2000:]
    assert "s3cret" not in p.stderr


@pytest.mark.requires("PostgreSQL", bool(PG_URL), "AUTOML_TEST_PG_URL is not set: needs a PostgreSQL server "
                      "(.ci/run starts one)")
def test_postgres_query_run_masks_the_password_and_predicts(tmp_path):
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from automl.urls import normalize

    df = _data(2500, seed=3)
    name = f"automl_e2e_{uuid.uuid4().hex[:8]}"
    eng = sa.create_engine(normalize(PG_URL))
    df.to_sql(name, eng, index=False)
    try:
        run = tmp_path / "run"
        p = run_cli(f"data.path={PG_URL}", f"data.query='SELECT * FROM {name}'", "data.max_rows=2000",
                    "task.target=y", *FAST, f"hydra.run.dir={run}", timeout=120)
        assert p.returncode == 0, p.stderr[-3000:]
        m = _manifest(run)
        assert m["sampling"]["rows_total"] == len(df) and m["data"]["format"] == "sql"
        password = make_url(PG_URL).password
        secret = f":{password}@"  # the URL's password part (the CI password is a common word)
        for f in ("manifest.json", "model_card.md", "run.log", "profile.json", "study.journal"):
            text = (run / f).read_text(errors="replace")
            assert secret not in text and (":***@" in text or f != "manifest.json"), f
        out = tmp_path / "p.csv"
        q = run_cli("predict", "--model", str(run), "--data", PG_URL, "--table", name, "--out", str(out),
                    "--chunk-rows", "500", timeout=120)
        assert q.returncode == 0, q.stderr[-2000:]
        assert len(pd.read_csv(out)) == len(df) and np.isfinite(pd.read_csv(out).filter(like="proba_")).all().all()
    finally:
        with eng.begin() as con:
            con.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
        eng.dispose()
