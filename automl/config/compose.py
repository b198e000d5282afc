"""Hydra's compose step, shared by the CLI and the Python API: the shipped `conf/` (plus a user's config
folder, as `--config-dir`) and overrides in, a typed RunConfig out. A misspelt key or a wrong type is a
UserError that names it, whichever door the config came through.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from automl.config import schema
from automl.config.schema import RunConfig, register_configs
from automl.errors import UserError
from automl.resources import CONF_DIR


def compose(overrides: Sequence[str], config_dir: str | os.PathLike[str] | None = None,
            with_hydra: bool = False) -> Any:
    """The DictConfig the CLI would compose from `overrides`. `config_dir` joins the search path after
    the shipped conf/, exactly where `--config-dir` puts it (so `+experiment=...` finds the user's files).
    `with_hydra` keeps the `hydra` node (its run.dir names the default run folder)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    extra = list(overrides)
    if config_dir is not None:
        folder = Path(config_dir).expanduser().absolute()
        if not folder.is_dir():
            raise UserError("config_dir", f"'{config_dir}' is not a folder", "Point it to your conf/ folder.")
        extra.append(f"hydra.searchpath=[file://{folder}]")
    register_configs()
    # a caller already inside a Hydra app (or a notebook that initialised Hydra) keeps its state
    backup = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return hydra_compose(config_name="config", overrides=extra, return_hydra_config=with_hydra)
    except UserError:
        raise
    except Exception as e:
        raise compose_error(e) from None
    finally:
        restore_gh_from_backup(backup)


def compose_error(e: BaseException) -> UserError:
    """Hydra's or OmegaConf's multi-line compose error as one line naming the key."""
    cause: BaseException = e
    while cause.__cause__ is not None:
        cause = cause.__cause__
    key = getattr(cause, "full_key", "") or getattr(e, "full_key", "")
    lines = [ln.strip() for ln in str(cause).splitlines() if ln.strip()]
    rule = next((ln for ln in lines if not ln.startswith(("full_key", "object_type", "reference_type"))),
                str(e).splitlines()[0] if str(e) else type(e).__name__)
    return UserError(str(key) or "config", rule.rstrip("."),
                     "Check the key and its type (automl --help lists groups and keys).")


def check_keys(cfg: Any, node: Any, prefix: str = "") -> None:
    """`+key=value` opens Hydra's struct flag; reject keys the schema does not know."""
    from omegaconf import DictConfig

    fields = {f.name: f for f in dataclasses.fields(node)}
    for key in cfg:
        full = f"{prefix}{key}"
        if key not in fields:
            raise UserError(full, "is not a config key", f"Remove it; valid keys here: {', '.join(fields)}.")
        sub = cfg[key] if isinstance(cfg, DictConfig) else None
        ftype = _resolve(fields[key].type)
        if isinstance(sub, DictConfig) and isinstance(ftype, type) and dataclasses.is_dataclass(ftype):
            check_keys(sub, ftype, full + ".")


def _resolve(t: Any) -> Any:
    return getattr(schema, t, t) if isinstance(t, str) else t


def to_run_config(cfg: Any) -> RunConfig:
    """The composed DictConfig (without its `hydra` node) as the typed RunConfig."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    check_keys(cfg, RunConfig)
    try:
        config = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", "") or "config"
        raise UserError(str(key), str(e).splitlines()[0], "Fix the value in your config or override.") from None
    if not isinstance(config, RunConfig):
        raise UserError("config", "did not compose to the run schema", "Start from conf/config.yaml.")
    return config


def config_to_json(config: RunConfig) -> dict[str, Any]:
    """The resolved RunConfig as plain JSON (the run folder's config.json: `automl export` rebuilds from
    it). TaskType is a str Enum, which json writes as its value."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def load_run_config(run_dir: Path) -> RunConfig:
    """A run folder's RunConfig: its config.json, or Hydra's .hydra/config.yaml for a run written before
    config.json existed. Validated against the schema, so a folder from another engine version that no
    longer fits it is a UserError naming the key."""
    from omegaconf import DictConfig, OmegaConf

    register_configs()  # the ${stem:...} resolver of an unresolved .hydra/config.yaml
    js, hy = run_dir / "config.json", run_dir / ".hydra" / "config.yaml"
    if js.is_file():
        raw = OmegaConf.create(json.loads(js.read_text()))
    elif hy.is_file():
        raw = OmegaConf.load(hy)
        if isinstance(raw, DictConfig) and "hydra" in raw:
            del raw["hydra"]
    else:
        raise UserError("RUN_DIR", f"'{run_dir}' holds neither config.json nor .hydra/config.yaml",
                        "Point to a run folder written by `automl` or automl.fit.")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(RunConfig), raw)
    except Exception as e:
        raise compose_error(e) from None
    return to_run_config(merged)
