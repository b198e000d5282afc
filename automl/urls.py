"""Database URLs (a data source or a study storage): recognise one, mask its password, pick the driver.

A password in a URL never leaves the process: every message, log line and manifest field that could
hold a URL passes through `redact`.
"""
from __future__ import annotations

import importlib.util
import re

_SCHEME = re.compile(r"^[a-z][a-z0-9+]*://")  # sqlite://, postgresql+psycopg2://, ...
_PASSWORD = re.compile(r"(://[^:/@]+):[^@]*@")  # the ":secret" of "scheme://user:secret@host"


def is_url(spec: str) -> bool:
    """A database URL (scheme://...), as opposed to a file path."""
    return bool(_SCHEME.match(str(spec)))


def redact(text: str) -> str:
    """`text` with the password of every URL in it replaced by ***: works on a URL and on a driver's
    error message that quotes one."""
    return _PASSWORD.sub(r"\1:***@", text)


def normalize(url: str) -> str:
    """SQLAlchemy 2.1 maps `postgresql://` to psycopg 3; use psycopg2 when only that driver is installed."""
    if (url.startswith(("postgresql://", "postgres://")) and importlib.util.find_spec("psycopg") is None
            and importlib.util.find_spec("psycopg2") is not None):
        return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url
