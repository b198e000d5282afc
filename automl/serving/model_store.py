"""The model store behind `automl registry`: versioned, hashed copies of run folders, with stages that can be
promoted and rolled back. (Not automl/registry.py, which maps component keys to estimators and steps.)

Layout under the registry root (--root, else $AUTOML_REGISTRY, else ~/.automl/registry):
    NAME/registry.json   versions (SHA-256 of every copied file, source, scores), stage stacks, history
    NAME/v1/ ...         model.onnx, manifest.json, reference_profile.json, model card, ... (read-only copies)

A stage (production, staging, ...) is a stack of versions: `promote` pushes one, `rollback` pops the
current one, so the version that held the stage before serves again. `automl serve --model NAME@production`
resolves the stage when it starts and again whenever registry.json changes.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from automl.errors import UserError
from automl.io import RunPaths, write_bytes, write_json
from automl.serving.artefact import read_verified, sha256_bytes

INDEX = "registry.json"
_RUN = RunPaths(Path())
COPIED = tuple(p.name for p in (_RUN.model, _RUN.manifest, _RUN.reference_profile, _RUN.model_card, _RUN.parity,
                                _RUN.profile, _RUN.leaderboard))  # a run folder's files a version keeps
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_STAGE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def default_root() -> Path:
    return Path(os.environ.get("AUTOML_REGISTRY") or Path.home() / ".automl" / "registry").expanduser()


@dataclass(frozen=True)
class Resolved:
    name: str
    version: int
    root: Path
    sha256: str
    files: tuple[tuple[str, str], ...] = ()

    def verify_files(self, field: str = "--model") -> None:
        """Every copied file must still hash to what push recorded (the manifest vouches for the model)."""
        for fname, want in self.files:
            p = self.root / fname
            if not p.is_file() or sha256_bytes(p.read_bytes()) != want:
                raise UserError(field, f"{self.label}: {fname} is missing or differs from the registry record",
                                "The registry copy was modified; push the run again.")

    @property
    def label(self) -> str:
        return f"{self.name}@v{self.version}"


def _check_name(name: str, field: str = "--name") -> str:
    if not _NAME.match(name):
        raise UserError(field, f"'{name}' is not a valid model name",
                        "Use letters, digits, '.', '_' or '-' (up to 64 characters, starting with a letter or digit).")
    return name


def check_stage(stage: str) -> str:
    if not _STAGE.match(stage):
        raise UserError("--stage", f"'{stage}' is not a valid stage name", "Use e.g. production or staging.")
    return stage


def _empty(name: str) -> dict[str, Any]:
    return {"name": name, "versions": [], "stages": {}, "history": []}


def read_index(root: Path, name: str) -> dict[str, Any]:
    p = root / name / INDEX
    if not p.is_file():
        return _empty(name)
    return json.loads(p.read_text(encoding="utf-8"))


@contextlib.contextmanager
def _locked(root: Path, name: str) -> Iterator[dict[str, Any]]:
    """The model's index, read and written under an exclusive lock (concurrent pushes stay consistent)."""
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        index = read_index(root, name)
        yield index
        write_json(d / INDEX, index)


def _event(index: dict[str, Any], action: str, **kw: Any) -> None:
    index["history"].append({"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "action": action, **kw})


def version_number(text: str, field: str) -> int:
    m = re.fullmatch(r"v?(\d+)", str(text))
    if not m:
        raise UserError(field, f"'{text}' is not a version", "Give a version as 3 or v3 (see `automl registry list`).")
    return int(m.group(1))


def _entry(index: dict[str, Any], version: int, field: str) -> dict[str, Any]:
    for v in index["versions"]:
        if v["version"] == version:
            return v
    have = ", ".join(f"v{v['version']}" for v in index["versions"]) or "none"
    raise UserError(field, f"{index['name']} has no version v{version}", f"Use one of: {have}.")


def push(run_dir: Path, name: str, root: Path, stage: str | None = None) -> tuple[int, bool]:
    """Copy a verified run folder as the next version; returns (version, created). Same model twice = same version."""
    _check_name(name)
    if not run_dir.is_dir():
        raise UserError("RUN_DIR", f"'{run_dir}' is not a folder", "Give the run folder that holds model.onnx.")
    data, manifest = read_verified(run_dir, "RUN_DIR")
    sha = sha256_bytes(data)
    with _locked(root, name) as index:
        for v in index["versions"]:
            if v["sha256"] == sha:
                if stage:
                    _promote(index, v["version"], stage)
                return v["version"], False
        # a folder left by a push that died before its index write is never reused
        taken = [v["version"] for v in index["versions"]] + [
            int(d.name[1:]) for d in (root / name).iterdir() if re.fullmatch(r"v\d+", d.name)]
        version = max(taken, default=0) + 1
        tmp = root / name / f".v{version}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        files = {}
        for fname in COPIED:
            src = run_dir / fname
            if src.is_file():
                blob = src.read_bytes()
                write_bytes(tmp / fname, blob)
                os.chmod(tmp / fname, 0o444)
                files[fname] = sha256_bytes(blob)
        os.replace(tmp, root / name / f"v{version}")
        final = manifest.final
        index["versions"].append({
            "version": version, "sha256": sha, "files": files, "source": str(run_dir.resolve()),
            "pushed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "task": manifest.task,
            "target": manifest.target, "metric": manifest.metric,
            "holdout_score": final.get("holdout_score"), "family": final.get("family"),
            "data_sha256": manifest.data.get("sha256"), "engine_version": manifest.engine_version})
        _event(index, "push", version=version, sha256=sha)
        if stage:
            _promote(index, version, stage)
    return version, True


def _promote(index: dict[str, Any], version: int, stage: str) -> None:
    stack = index["stages"].setdefault(check_stage(stage), [])
    if stack and stack[-1] == version:
        return
    _event(index, "promote", stage=stage, version=version, previous=stack[-1] if stack else None)
    stack.append(version)


def promote(root: Path, name: str, version: int, stage: str = "production") -> int | None:
    _require(root, name)
    with _locked(root, name) as index:
        _entry(index, version, "VERSION")
        stack = index["stages"].get(stage, [])
        previous = stack[-1] if stack else None
        _promote(index, version, stage)
    return previous


def rollback(root: Path, name: str, stage: str = "production") -> tuple[int, int]:
    """Pop the stage's current version; returns (from, to)."""
    _require(root, name)
    with _locked(root, name) as index:
        stack = index["stages"].get(check_stage(stage), [])
        if len(stack) < 2:
            raise UserError("--stage", f"{name}@{stage} has no earlier version to roll back to"
                            + (f" (it holds only v{stack[0]})" if stack else " (nothing was promoted)"),
                            f"Promote a version instead: automl registry promote {name} VERSION --stage {stage}.")
        current = stack.pop()
        _event(index, "rollback", stage=stage, version=stack[-1], previous=current)
    return current, stack[-1]


def _require(root: Path, name: str) -> None:
    _check_name(name, "NAME")
    if not (root / name / INDEX).is_file():
        known = sorted(p.name for p in root.iterdir() if (p / INDEX).is_file()) if root.is_dir() else []
        raise UserError("NAME", f"no model '{name}' in the registry at {root}",
                        f"Push one first (automl registry push RUN_DIR --name {name})"
                        + (f"; registered: {', '.join(known)}." if known else "."))


def is_reference(text: str) -> bool:
    """NAME@stage / NAME@vN (a path that exists is a path, never a reference)."""
    return "@" in text and not Path(text).exists()


def resolve(ref: str, root: Path, field: str = "--model") -> Resolved:
    """NAME@production, NAME@staging, NAME@v3, NAME@3 -> the version folder and its recorded hash."""
    name, _, which = ref.partition("@")
    _check_name(name, field)
    if not (root / name / INDEX).is_file():
        raise UserError(field, f"no model '{name}' in the registry at {root}",
                        "Push it (automl registry push RUN_DIR --name NAME) or set --registry / $AUTOML_REGISTRY.")
    index = read_index(root, name)
    which = which or "production"
    if re.fullmatch(r"v?\d+", which):
        version = version_number(which, field)
    else:
        stack = index["stages"].get(which, [])
        if not stack:
            stages = ", ".join(f"{s} (v{st[-1]})" for s, st in index["stages"].items() if st) or "none"
            raise UserError(field, f"{name} has no version in stage '{which}'",
                            f"Promote one (automl registry promote {name} VERSION --stage {which}); stages: {stages}.")
        version = stack[-1]
    entry = _entry(index, version, field)
    return Resolved(name, version, root / name / f"v{version}", entry["sha256"], tuple(sorted(entry["files"].items())))


def list_models(root: Path, name: str | None = None) -> list[dict[str, Any]]:
    """The index of NAME, or of every model in the store (sorted by name)."""
    if name:
        _require(root, name)
        return [read_index(root, name)]
    names = sorted(p.name for p in root.iterdir() if (p / INDEX).is_file()) if root.is_dir() else []
    return [read_index(root, n) for n in names]
