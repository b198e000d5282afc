"""SQL sources (automl/data/sql.py): a table or a SELECT read in chunks through a server-side cursor,
with the types, statistics and samples a CSV of the same rows gives; one-line errors that name the field
and never show the password; a row-level data hash. SQLite made here (always runs); PostgreSQL when
AUTOML_TEST_PG_URL is set (.ci/run sets it)."""

from __future__ import annotations

import os
import sqlite3
import uuid

import numpy as np
import pandas as pd
import pytest

from automl.data import scan as scan_mod
from automl.data.large import load_for_run
from automl.data.load import source_sha256
from automl.data.source import open_source
from automl.data.sql import open_sql
from automl.errors import UserError
from automl.memory import MemoryBudget
from automl.urls import normalize, redact
from tests.conftest import require
from tests.unit.test_scan import _check_against_pandas, _frame

PG_URL = os.environ.get("AUTOML_TEST_PG_URL", "")


def _sqlite(tmp_path, df: pd.DataFrame, name: str = "t") -> str:
    path = tmp_path / "d.db"
    with sqlite3.connect(path) as con:
        df.to_sql(name, con, index=False)
    return f"sqlite:///{path}"


@pytest.fixture()
def pg_table():
    """A fresh table in the PostgreSQL test database, dropped afterwards."""
    require("PostgreSQL", bool(PG_URL), "AUTOML_TEST_PG_URL is not set: PostgreSQL tests need a server "
            "(.ci/run starts one)")
    import sqlalchemy as sa

    name = f"automl_sql_{uuid.uuid4().hex[:8]}"
    eng = sa.create_engine(normalize(PG_URL))
    yield PG_URL, name, eng
    with eng.begin() as con:
        con.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
    eng.dispose()


def test_sqlite_table_streams_in_chunks_and_matches_pandas(tmp_path, monkeypatch):
    df = _frame()
    url = _sqlite(tmp_path, df)
    src = open_source(url, table="t")
    assert src.kind == "sql" and src.name == "t"
    monkeypatch.setattr("automl.data.sql.CHUNK_ROWS", 700)  # many chunks: the merge across them is tested
    sizes = [b.num_rows for b in src.sql.batches(700)]
    assert sizes[0] == 700 and sum(sizes) == len(df) and len(sizes) == 8
    res = scan_mod.scan(src, "y", 1000, 250, 0.2, 0)
    _check_against_pandas(res, df)
    assert res.search["age"].dtype == np.int64 and res.search["income"].dtype == np.float64


def test_sqlite_whole_read_gives_the_frame_back(tmp_path):
    df = _frame(3000)
    url = _sqlite(tmp_path, df)
    whole, sampled = load_for_run(url, "y", MemoryBudget(100_000, "t"), 1, 0.2, 0,
                                  src=open_source(url, query="SELECT * FROM t"))
    assert sampled is None
    pd.testing.assert_frame_equal(whole, df)  # integers stay int64, text with NULLs stays text


def test_forced_scan_on_a_query_samples_and_profiles_every_row(tmp_path):
    df = _frame(6000)
    url = _sqlite(tmp_path, df)
    src = open_source(url, query="SELECT income, age, city, code, y FROM t WHERE age >= 30")
    part, sampled = load_for_run(url, "y", MemoryBudget(100_000, "t"), 1, 0.2, 0, max_rows=2500, src=src)
    sub = df[df["age"] >= 30]
    assert sampled is not None and sampled.scan.n_rows == len(sub)
    assert sampled.info["source"] == {"format": "sql", "url": url, "read": "data.query"}
    assert sampled.info["estimated_rows"] == len(sub)  # COUNT(*) over the query
    assert len(part) <= 2500 + scan_mod.CLASS_FLOOR and sampled.n_holdout == 500
    assert sampled.scan.target_counts == {str(k): int(v) for k, v in sub["y"].value_counts().items()}


def test_data_hash_covers_rows_and_query(tmp_path):
    df = _frame(2000)
    url = _sqlite(tmp_path, df)

    def sha(query: str) -> str:
        src = open_source(url, query=query)
        load_for_run(url, "y", MemoryBudget(100_000, "t"), 1, 0.2, 0, src=src)
        digest, what = source_sha256(src, url)
        assert "every row" in what and len(digest) == 64
        return digest

    a = sha("SELECT * FROM t")
    assert sha("SELECT * FROM t") == a
    assert sha("SELECT * FROM t WHERE age > 20") != a
    with sqlite3.connect(tmp_path / "d.db") as con:
        con.execute("UPDATE t SET age = age + 1 WHERE rowid = 1500")
    assert sha("SELECT * FROM t") != a  # one changed value changes the hash


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"table": "nope"}, "data.table", "no table 'nope'"),
        ({"query": "SELECT zz FROM t"}, "data.query", "the query failed"),
        ({"query": "DELETE FROM t"}, "data.query", "must be a SELECT"),
        ({}, "data.query", "exactly one of"),
        ({"query": "SELECT * FROM t", "table": "t"}, "data.query", "both are set"),
    ],
)
def test_user_errors_name_the_field(tmp_path, kwargs, field, words):
    url = _sqlite(tmp_path, _frame(50))
    with pytest.raises(UserError) as e:
        open_sql(url, **kwargs)
    assert e.value.where == field and words in e.value.rule and "\n" not in str(e.value)


def test_url_errors_mask_the_password(tmp_path):
    with pytest.raises(UserError) as e:
        open_sql(f"sqlite:///{tmp_path / 'missing.db'}", table="t")
    assert e.value.where == "data.path" and "does not exist" in e.value.rule
    assert not (tmp_path / "missing.db").exists()  # SQLite would have created it on connect
    with pytest.raises(UserError) as e:
        open_sql("nosuchdb://user:s3cret@host/db", table="t")
    assert e.value.where == "data.path" and "s3cret" not in str(e.value) and "user:***@" in str(e.value)
    # nothing listens on port 1: a connection error, password masked
    with pytest.raises(UserError) as e:
        open_sql("postgresql+psycopg2://user:s3cret@127.0.0.1:1/db", table="t")
    assert e.value.where == "data.path" and "cannot connect" in e.value.rule and "s3cret" not in str(e.value)
    assert redact("postgresql://u:p@h/db") == "postgresql://u:***@h/db"


def test_a_column_that_changes_type_is_named(tmp_path):
    path = tmp_path / "d.db"
    with sqlite3.connect(path) as con:  # SQLite stores what it is given: text after numbers
        con.execute("CREATE TABLE t (x, y)")
        con.executemany("INSERT INTO t VALUES (?, ?)", [(float(i), i % 2) for i in range(100)] + [("abc", 1)])
    src = open_source(f"sqlite:///{path}", table="t")
    with pytest.raises(UserError) as e:
        list(src.sql.batches(50))
    assert e.value.where == "column 'x'" and "type" in e.value.rule


def test_postgres_table_scan_and_whole_read(pg_table):
    url, name, eng = pg_table
    df = _frame(3000)
    df.to_sql(name, eng, index=False)
    src = open_source(url, table=name)
    _check_against_pandas(scan_mod.scan(src, "y", 1000, 250, 0.2, 0), df)
    whole, sampled = load_for_run(url, "y", MemoryBudget(100_000, "t"), 1, 0.2, 0, src=src)
    assert sampled is None
    pd.testing.assert_frame_equal(whole, df, check_dtype=False)
