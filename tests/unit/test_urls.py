"""Database URLs (automl/urls.py): told apart from file paths, the password masked wherever a URL appears,
and `postgresql://` sent to the installed driver."""
from __future__ import annotations

import importlib.util

import pytest

from automl.urls import is_url, normalize, redact

PG = "postgresql://user:pw@host:5432/db"


@pytest.mark.parametrize("spec", [PG, "sqlite:///x.db", "sqlite:////abs/x.db", "postgresql+psycopg2://u@h/db",
                                  "mysql+pymysql://me:s3cret@localhost/db"])
def test_database_urls_are_urls(spec):
    assert is_url(spec)


@pytest.mark.parametrize("spec", ["data/train.csv", "/abs/path/x.parquet", "C:/data/x.csv", "", "study.journal",
                                  "./rel/x.db"])
def test_file_paths_are_not_urls(spec):
    assert not is_url(spec)


def test_redact_masks_the_password_only():
    assert redact(PG) == "postgresql://user:***@host:5432/db"
    assert redact("postgresql://u:p@h/db") == "postgresql://u:***@h/db"
    assert redact("postgresql://user@host/db") == "postgresql://user@host/db"  # no password: as is
    assert redact("sqlite:///x.db") == "sqlite:///x.db"
    assert redact("data/train.csv") == "data/train.csv"


def test_redact_masks_a_url_inside_a_driver_message():
    msg = 'connection to "postgresql://user:pw@host:5432/db" failed: password authentication failed'
    out = redact(msg)
    assert "pw@" not in out and "postgresql://user:***@host:5432/db" in out


def test_normalize_picks_the_installed_postgres_driver():
    assert normalize("sqlite:///x.db") == "sqlite:///x.db"
    assert normalize("data/train.csv") == "data/train.csv"
    assert normalize("postgresql+psycopg2://u@h/db") == "postgresql+psycopg2://u@h/db"  # a named driver stays
    only_psycopg2 = importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None
    want = "postgresql+psycopg2://user:pw@host:5432/db" if only_psycopg2 else PG
    assert normalize(PG) == want


def test_normalize_with_only_psycopg2_installed(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "psycopg" else object() if name == "psycopg2" else real(name))
    assert normalize(PG) == "postgresql+psycopg2://user:pw@host:5432/db"
    assert normalize("postgres://u@h/db") == "postgresql+psycopg2://u@h/db"
