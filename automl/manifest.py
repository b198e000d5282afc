"""manifest.json as a typed object: what ran, on what, how it ended and what it shipped. Built once by
the outputs stage; every reader (card, report, sweep rows, model store, serving) loads it through
`read_manifest`, so a field is named in one place."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from automl.io import RunPaths


@dataclass
class Manifest:
    """manifest.json: what ran, on what, how it ended and what it shipped. Field order is the file's;
    every field has a default so a manifest written by an older engine still loads."""

    engine_version: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    git_sha: str | None = None
    git_dirty: bool | None = None
    seed: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    target: str = ""
    task: str = ""
    metric: str = ""
    greater_is_better: bool = True
    classes: list[Any] | None = None
    budget: dict[str, Any] = field(default_factory=dict)
    rows_dropped_missing_target: int = 0
    resumed: bool = False
    orphans_recovered: int = 0
    search: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""
    sampling: dict[str, Any] | None = None
    ensemble_selection: dict[str, Any] | None = None
    relational: dict[str, Any] | None = None
    status: str = "FAILED"
    error: str = ""
    final: dict[str, Any] = field(default_factory=dict)
    reproducible: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    finished_at: str = ""

    OPTIONAL: ClassVar[tuple[str, ...]] = ("sampling", "ensemble_selection", "relational")

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if not (k in self.OPTIONAL and v is None)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Manifest:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def read_manifest(paths: RunPaths) -> Manifest:
    """The run folder's manifest.json as a Manifest."""
    return Manifest.from_json(json.loads(paths.manifest.read_text()))
