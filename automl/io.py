"""Run-folder paths and atomic writes (temp file, fsync, rename): a run folder is never half-written."""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def oof_file(oof_dir: Path, trial_number: int) -> Path:
    """A trial's out-of-fold predictions in an OOF folder: the run folder's oof/, or a worker's --oof-dir."""
    return oof_dir / f"trial_{trial_number}.npy"


def fresh_oof_file(oof_dir: Path, trial_number: int) -> Path:
    """A re-scored trial's out-of-fold predictions on the fresh folds (automl/stages/rescore.py)."""
    return oof_dir / f"trial_{trial_number}_fresh.npy"


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def model(self) -> Path:
        return self.root / "model.onnx"

    @property
    def leaderboard(self) -> Path:
        return self.root / "leaderboard.csv"

    @property
    def config(self) -> Path:
        """The resolved RunConfig as JSON: what `automl export` rebuilds a trial from."""
        return self.root / "config.json"

    @property
    def trials(self) -> Path:
        return self.root / "trials.csv"

    @property
    def model_card(self) -> Path:
        return self.root / "model_card.md"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def profile(self) -> Path:
        return self.root / "profile.json"

    @property
    def parity(self) -> Path:
        return self.root / "parity.json"

    @property
    def study(self) -> Path:
        return self.root / "study.journal"

    @property
    def oof(self) -> Path:
        return self.root / "oof"

    def oof_file(self, trial_number: int) -> Path:
        """One trial's out-of-fold predictions (written by whichever worker ran it)."""
        return oof_file(self.oof, trial_number)

    @property
    def holdout_predictions(self) -> Path:
        return self.root / "holdout_predictions.npy"

    @property
    def holdout_labels(self) -> Path:
        return self.root / "holdout_labels.npy"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def log(self) -> Path:
        return self.root / "run.log"

    @property
    def reference_profile(self) -> Path:
        return self.root / "reference_profile.json"

    @property
    def frame(self) -> Path:
        """The rows of a run fitted from a pandas DataFrame (`automl.fit(frame, ...)`): its data.path."""
        return self.root / "data.parquet"

    @property
    def relational(self) -> Path:
        """A run on several tables: what `automl predict --tables` needs to recompute the aggregates."""
        return self.root / "relational"

    @property
    def relational_features(self) -> Path:
        return self.relational / "features.json"

    @property
    def relational_layout(self) -> Path:
        return self.relational / "layout.json"

    @property
    def relational_parity(self) -> Path:
        return self.root / "relational_parity.json"


@dataclass(frozen=True)
class SweepPaths:
    """A Hydra multirun folder: one run folder per job below it, and the sweep's own summaries."""
    root: Path

    @property
    def summary(self) -> Path:
        return self.root / "summary.csv"

    @property
    def compare_csv(self) -> Path:
        return self.root / "compare.csv"

    @property
    def compare_md(self) -> Path:
        return self.root / "compare.md"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    def jobs(self) -> list[RunPaths]:
        """Every job folder below the sweep that wrote a manifest, in name order."""
        return [RunPaths(m.parent) for m in sorted(self.root.glob("*/manifest.json"))]


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, default=_default) + "\n")


def _default(o: Any) -> Any:
    if getattr(o, "ndim", 0) > 0 and hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    return str(o)
