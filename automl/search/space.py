"""Search spaces as data: load `search_spaces/<key>.yaml` and suggest from it, define-by-run.

A parameter exists in a trial only when its `when:` clause holds (auto-sklearn's InCondition),
so conditional per-family spaces are natural in Optuna.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from automl.errors import UserError
from automl.resources import SPACE_DIR

DEFAULT_SPACE_DIR = SPACE_DIR  # the shipped search_spaces/ (automl/resources.py)
_TYPES = ("float", "int", "categorical")


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    default: Any = None
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    pinned: bool = False  # search.fixed: one choice, `default`; portfolio entries do not override it

    def active(self, context: Mapping[str, Any]) -> bool:
        return all(k in context and context[k] in allowed for k, allowed in self.when.items())

    def suggest(self, trial: Any, prefix: str) -> Any:
        name = f"{prefix}.{self.name}"
        if self.type in ("float", "int"):
            low, high = self.low, self.high
            assert low is not None and high is not None  # a numeric spec is only built with both bounds
            if self.type == "float":
                return trial.suggest_float(name, float(low), float(high), log=self.log)
            return trial.suggest_int(name, int(low), int(high), log=self.log)
        return trial.suggest_categorical(name, list(self.choices))


def _parse(key: str, name: str, raw: Mapping[str, Any], source: str) -> ParamSpec:
    where = f"{source}: {name}"
    if not isinstance(raw, Mapping) or raw.get("type") not in _TYPES:
        raise UserError(where, f"needs type one of {', '.join(_TYPES)}", "See search_spaces/README.md.")
    unknown = set(raw) - {"type", "low", "high", "log", "choices", "default", "when", "name"}
    if unknown:
        raise UserError(where, f"unknown field(s) {sorted(unknown)}",
                        "Use type, low, high, log, choices, default, when.")
    when = {k: tuple(v) if isinstance(v, list) else (v,) for k, v in (raw.get("when") or {}).items()}
    name = str(raw.get("name", name))  # two entries may define one parameter under exclusive `when:`s
    if raw["type"] == "categorical":
        choices = tuple(raw.get("choices") or ())
        if not choices:
            raise UserError(where, "a categorical parameter needs choices", "Add choices: [a, b].")
        default = raw.get("default", choices[0])
        if default not in choices:
            raise UserError(where, f"default {default!r} is not among the choices", "Fix default or choices.")
        return ParamSpec(name, "categorical", choices=choices, default=default, when=when)
    low, high = raw.get("low"), raw.get("high")
    if low is None or high is None or not float(low) < float(high):
        raise UserError(where, f"needs low < high, got low={low}, high={high}", "Fix the range.")
    if raw.get("log") and float(low) <= 0:
        raise UserError(where, "a log range needs low > 0", "Raise low or drop log.")
    default = raw.get("default", low)
    if not float(low) <= float(default) <= float(high):
        raise UserError(where, f"default {default} is outside [{low}, {high}]", "Fix default or the range.")
    return ParamSpec(name, raw["type"], low=low, high=high, log=bool(raw.get("log", False)),
                     default=default, when=when)


PORTFOLIO = "portfolio"  # reserved key: extra configurations that run right after the defaults


def _read(key: str, space_dir: str | Path) -> tuple[dict[str, Any], Path]:
    path = Path(space_dir or DEFAULT_SPACE_DIR) / f"{key}.yaml"
    if not path.exists():
        raise UserError("search.space_dir", f"no search space file for '{key}' ({path})",
                        f"Add {path.name} (an empty {{}} file if the family has no parameters).")
    return yaml.safe_load(path.read_text()) or {}, path


def load_space(key: str, space_dir: str | Path = "") -> list[ParamSpec]:
    raw, path = _read(key, space_dir)
    return [_parse(key, name, spec, path.name) for name, spec in raw.items() if name != PORTFOLIO]


def load_portfolio(key: str, space_dir: str | Path = "") -> list[dict[str, Any]]:
    """Configurations (parameter -> value; the rest take their defaults) tried after the default one."""
    raw, path = _read(key, space_dir)
    entries = raw.get(PORTFOLIO) or []
    names = {p.name for p in load_space(key, space_dir)}
    for e in entries:
        unknown = set(e) - names
        if unknown:
            raise UserError(f"{path.name}: portfolio", f"unknown parameter(s) {sorted(unknown)}",
                            "Use parameters defined in the same file.")
    return [dict(e) for e in entries]


def flat_fixed(fixed: Mapping[str, Any]) -> dict[str, Any]:
    """search.fixed as "prefix.param" -> value: nested {family: {param: value}} (what
    `+search.fixed.lightgbm.num_leaves=15` composes to) and dotted keys alike."""
    out: dict[str, Any] = {}
    for key, value in fixed.items():
        if isinstance(value, Mapping):
            out.update({f"{key}.{k}": v for k, v in flat_fixed(value).items()})
        else:
            out[str(key)] = value
    return out


def _pinned(p: ParamSpec, value: Any, where: str) -> ParamSpec:
    """The parameter fixed at `value`: a one-choice categorical, which Optuna records in every trial's
    params without sampling it (a single-valued distribution is never asked of the sampler)."""
    if p.type == "categorical":
        if value not in p.choices:
            raise UserError(where, f"{value!r} is not among the choices {list(p.choices)}",
                            f"Pin one of {list(p.choices)}.")
    else:
        if isinstance(value, bool) or not isinstance(value, int | float) or (p.type == "int" and value != int(value)):
            raise UserError(where, f"must be {'an integer' if p.type == 'int' else 'a number'}, got {value!r}",
                            f"Pin a value in [{p.low}, {p.high}].")
        assert p.low is not None and p.high is not None
        if not float(p.low) <= float(value) <= float(p.high):
            raise UserError(where, f"{value!r} is outside the searched range [{p.low}, {p.high}]",
                            "Pin a value in the range, or widen it in a copy of the space (search.space_dir).")
        value = int(value) if p.type == "int" else float(value)
    return ParamSpec(p.name, "categorical", choices=(value,), default=value, when=p.when, pinned=True)


def pin(spaces: dict[str, list[ParamSpec]], fixed: Mapping[str, Any]) -> dict[str, Any]:
    """Fix the parameters search.fixed names, in place; returns them as "prefix.param" -> value.

    A key's prefix is a searched family, `pre` (preprocessing) or `imb` (imbalance); the parameter must
    exist in that space."""
    flat = flat_fixed(fixed)
    for key, value in flat.items():
        where = f"search.fixed.{key}"
        prefix, _, name = key.partition(".")
        space_key = {"pre": "preprocessing", "imb": "imbalance"}.get(prefix, prefix)
        if space_key not in spaces:
            raise UserError(where, f"'{prefix}' is not a searched space (searched: "
                            f"{', '.join(k for k in spaces if k not in ('preprocessing', 'imbalance'))}, pre"
                            f"{', imb' if 'imbalance' in spaces else ''})",
                            "Name a family in estimators.include (lightgbm.num_leaves), pre.<param> or imb.<param>.")
        specs = spaces[space_key]
        hits = [i for i, p in enumerate(specs) if p.name == name]
        if not hits:
            raise UserError(where, f"'{name}' is not a parameter of {space_key}",
                            f"Use one of: {', '.join(dict.fromkeys(p.name for p in specs)) or '(none)'}.")
        for i in hits:  # one parameter may be defined twice under exclusive `when:`s
            specs[i] = _pinned(specs[i], value, where)
        flat[key] = specs[hits[0]].default
    return flat


def suggest(trial: Any, space: list[ParamSpec], prefix: str, context: dict[str, Any]) -> dict[str, Any]:
    """Suggest the active parameters in file order; each choice joins the context for later `when:`s."""
    chosen: dict[str, Any] = {}
    for p in space:
        if p.active(context):
            chosen[p.name] = context[p.name] = p.suggest(trial, prefix)
    return chosen


def defaults(space: list[ParamSpec], prefix: str, context: dict[str, Any],
             overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The default configuration (with `overrides`) as Optuna params for enqueue_trial, honouring `when:`."""
    out: dict[str, Any] = {}
    for p in space:
        if p.active(context):
            value = p.default if p.pinned else (overrides or {}).get(p.name, p.default)
            context[p.name] = value
            out[f"{prefix}.{p.name}"] = value
    return out
