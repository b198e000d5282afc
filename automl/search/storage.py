"""Where a study lives: the embedded journal file in the run folder, or a database (`search.storage`).

Journal: safe for several processes on one machine (file lock), no server, no heartbeats.
Database (PostgreSQL; SQLite for one machine): several machines can join one study; workers record
heartbeats while a trial runs and any worker fails a trial whose heartbeat went stale and retries it once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from automl.errors import UserError
from automl.search.optuna_compat import retry_callback_kwargs
from automl.urls import is_url, normalize, redact


def open_storage(spec: str, journal_path: Path | None = None, heartbeat_s: int = 10, create_tables: bool = True) -> Any:
    """`spec` "" -> journal at journal_path; an existing journal file path; or a database URL."""
    if not spec or not is_url(spec):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = Path(spec) if spec else journal_path
        if path is None:
            raise UserError("search.storage", "no journal file given", "Pass the run folder's study.journal.")
        return JournalStorage(JournalFileBackend(str(path)))
    import optuna

    url = normalize(spec)
    engine_kwargs = {"connect_args": {"timeout": 20.0}} if url.startswith("sqlite") else None
    hb = max(1, int(heartbeat_s))
    import warnings

    try:
        with warnings.catch_warnings():  # heartbeats and the retry callback are "experimental" since Optuna 2.x
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # tables are created by the driver only: two fresh processes racing on CREATE TABLE fail (compat P13)
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=hb,
                                              grace_period=3 * hb, skip_table_creation=not create_tables,
                                              **retry_callback_kwargs(max_retry=1))
    except ImportError as e:
        raise UserError("search.storage", f"no database driver for '{redact(spec)}' ({e})",
                        "Install the driver (PostgreSQL: pip install psycopg2-binary).") from None
    except Exception as e:  # connection refused, bad credentials, unknown database
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError("search.storage", f"cannot open '{redact(spec)}': {first}",
                        "Check the URL, that the server runs and that the database exists.") from None
