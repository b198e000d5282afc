"""What a joining worker reads from the study its driver published: the spec (config, data sha,
fingerprint, deadline), waited for, and the typed config rebuilt from it. The join itself is
automl/stages/join.py."""
from __future__ import annotations

import dataclasses
import logging
import time
import typing
from typing import Any

from automl.errors import UserError
from automl.search.coordination import SPEC_ATTR
from automl.search.storage import open_storage

log = logging.getLogger("automl")


def from_dict(cls: type, d: dict[str, Any]) -> Any:
    """Rebuild a (nested) config dataclass from its JSON form."""
    hints = typing.get_type_hints(cls)
    kw = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue
        t, v = hints[f.name], d[f.name]
        if isinstance(t, type) and dataclasses.is_dataclass(t):  # a nested config class
            v = from_dict(t, v)
        elif isinstance(t, type) and issubclass(t, __import__("enum").Enum):
            v = t(v)
        kw[f.name] = v
    return cls(**kw)


def load_spec(storage_spec: str, study_name: str, wait_s: float) -> dict[str, Any]:
    """Wait for the driver: its database tables, its study, and the spec it publishes."""
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

