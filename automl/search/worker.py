"""What a joining worker reads from the study its driver published: the spec (config, data sha,
fingerprint, deadline), waited for, and the typed config rebuilt from it. The join itself is
automl/stages/join.py."""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import time
import typing
from pathlib import Path
from typing import Any

from automl.errors import UserError

log = logging.getLogger("automl")


def from_dict(cls: type, d: dict[str, Any]) -> Any:
    """Rebuild a (nested) config dataclass from its JSON form."""
    hints = typing.get_type_hints(cls)
    kw = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue
        t, v = hints[f.name], d[f.name]
        if dataclasses.is_dataclass(t):
            v = from_dict(t, v)
        elif isinstance(t, type) and issubclass(t, __import__("enum").Enum):
            v = t(v)
        kw[f.name] = v
    return cls(**kw)


def load_spec(storage_spec: str, study_name: str, wait_s: float) -> dict[str, Any]:
    """Wait for the driver: its database tables, its study, and the spec it publishes."""
    from automl.search.coordination import SPEC_ATTR
    from automl.search.storage import open_storage

    end = time.time() + wait_s
    why = ""
    while True:
        try:
            storage = open_storage(storage_spec, create_tables=False)
            sid = storage.get_study_id_from_name(study_name)
            spec = storage.get_study_user_attrs(sid).get(SPEC_ATTR)
            if spec:
                return spec
            why = "the study exists but its driver has not published the search yet"
        except KeyError:
            why = f"no study named '{study_name}'"
        except UserError as e:
            why = e.rule if hasattr(e, "rule") else str(e)
        if time.time() >= end:
            raise UserError("--study", f"cannot join '{study_name}' after waiting {wait_s:.0f}s: {why}",
                            "Start the driver first (automl search.storage=URL search.study_name=NAME ...) "
                            "or pass --wait SECONDS.")
        time.sleep(1.0)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="automl worker", description="Join a running automl search as one more worker.")
    ap.add_argument("--storage", required=True,
                    help="the driver's search.storage URL, or its run folder's study.journal (same machine)")
    ap.add_argument("--study", default="automl", help="the driver's search.study_name (default: automl)")
    ap.add_argument("--data", default="", help="the data file on this machine, if its path differs from the driver's")
    ap.add_argument("--oof-dir", default="", help="where to write out-of-fold predictions (default: the run folder "
                    "if this machine sees it; ensembles only use trials whose predictions reach it)")
    ap.add_argument("--n-jobs", type=int, default=0, help="threads per trial (default: all cores)")
    ap.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the driver to publish the study")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][worker] %(message)s")
    logging.getLogger("automl").setLevel(logging.INFO)

    from automl.reporting.progress import log_trial
    from automl.stages.join import join

    return join(a.storage, a.study, a.data, a.oof_dir, a.n_jobs, a.wait, log_trial=log_trial)
