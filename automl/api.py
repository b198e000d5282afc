"""The Python API: `automl.fit(...)` runs a search like the `automl` command, `automl.load(...)` opens a
run folder; both give a `Run` (its files parsed, its model.onnx scoring new rows with onnxruntime).

The config goes through the same Hydra compose step, typed schema and validation as the command line
(automl/config/compose.py): there is no second config system, and a misspelt key raises the same
UserError that names it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import open_dict

from automl.config.compose import compose, to_run_config
from automl.config.validate import validate_config
from automl.data.frame import check_frame_columns, write_frame
from automl.data.source import open_source
from automl.errors import UserError
from automl.export.contract import class_labels, feeds_from_frame, input_schema
from automl.export.onnx import session
from automl.io import RunPaths
from automl.manifest import Manifest, read_manifest
from automl.run import run as run_pipeline
from automl.stages.export_trial import check_export
from automl.urls import is_url

SCORE_ROWS = 100_000  # rows scored per onnxruntime call, so a large frame's feeds are never all held at once
FRAME_NAME = "dataframe"  # data.name (the run folder's suffix) of a run fitted from a DataFrame


class RunFailed(RuntimeError):
    """`fit` finished without a model (manifest.json says why); `.run` is the run folder, to inspect."""

    def __init__(self, run: Run) -> None:
        self.run = run
        super().__init__(f"the run failed: {run.manifest.error} (run folder: {run.dir})")


class Run:
    """One run folder. `dir` is its path; `manifest`, `card` and `leaderboard` are its files parsed;
    `predict` and `predict_proba` score new rows with its model.onnx through onnxruntime, as
    `automl predict` and `automl serve` do (the same graph, the same ONNX input contract)."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(run_dir)
        self.paths = RunPaths(self.dir)

    def __repr__(self) -> str:
        m = self.manifest
        score = m.final.get("holdout_score")
        return (f"Run('{self.dir}', status={m.status}, task={m.task}, metric={m.metric}"
                + (f", holdout={score:.5g})" if isinstance(score, float) else ")"))

    @cached_property
    def manifest(self) -> Manifest:
        """manifest.json: versions, seed, data SHA-256, timings, budget, status, the chosen model."""
        return read_manifest(self.paths)

    @cached_property
    def card(self) -> str:
        """model_card.md (markdown): task, data profile, search, holdout metrics, parity, limitations."""
        return self.paths.model_card.read_text(encoding="utf-8")

    @cached_property
    def leaderboard(self) -> pd.DataFrame:
        """leaderboard.csv: every trial ranked, failed ones included with their reason."""
        return pd.read_csv(self.paths.leaderboard)

    @property
    def classes(self) -> list[Any] | None:
        """The class labels, in the column order of predict_proba; None for a regression."""
        return class_labels(self._meta)

    @cached_property
    def _session(self) -> Any:
        if not self.paths.model.exists():
            raise UserError("model.onnx", f"'{self.paths.model}' does not exist (the run ended {self.manifest.status}"
                            + (f": {self.manifest.error})" if self.manifest.error else ")"),
                            "Score with a run folder whose manifest says COMPLETE.")
        if self.paths.relational_layout.exists():
            raise UserError("predict", "this run joined several tables; a frame of model inputs is not enough",
                            "Use `automl predict --model RUN_DIR --tables NAME=PATH ...` (it recomputes the "
                            "aggregates).")
        return session(self.paths.model.read_bytes())

    @cached_property
    def _meta(self) -> dict[str, str]:
        return dict(self._session.get_modelmeta().custom_metadata_map)

    def _score(self, frame: pd.DataFrame, output: str) -> np.ndarray:
        if not isinstance(frame, pd.DataFrame):
            raise UserError("data", f"is a {type(frame).__name__}, not a pandas DataFrame",
                            "Pass a DataFrame with the training columns (the target may be absent).")
        schema = input_schema(self._meta)
        parts = []
        for i in range(0, len(frame), SCORE_ROWS):
            feeds = feeds_from_frame(frame.iloc[i:i + SCORE_ROWS], schema, where="the frame")
            parts.append(np.asarray(self._session.run([output], feeds)[0]))
        if not parts:
            raise UserError("data", "the frame has no rows", "Pass at least one row.")
        return np.concatenate(parts)

    def predict(self, frame: pd.DataFrame) -> pd.Series:
        """The graph's `label` output for each row of `frame` (raw columns, as in training), on its index."""
        return pd.Series(self._score(frame, "label").reshape(-1), index=frame.index, name=self.manifest.target)

    def predict_proba(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The graph's `probabilities` output: one column per class (named by its label), on frame's index."""
        classes = self.classes
        if classes is None:
            raise UserError("predict_proba", "this run is a regression: it has no class probabilities",
                            "Use run.predict(frame).")
        return pd.DataFrame(self._score(frame, "probabilities"), index=frame.index, columns=classes)

    def _outputs(self) -> set[str]:
        return {o.name for o in self._session.get_outputs()}

    def predict_interval(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The graph's conformal `interval` output (regression run with task.coverage): columns `lower` and
        `upper`, on frame's index; about task.coverage of new rows fall inside (docs/validation.md)."""
        if "interval" not in self._outputs():
            raise UserError("predict_interval", "this model has no `interval` output",
                            "Fit a regression with task.coverage=0.9 (or another level).")
        iv = self._score(frame, "interval")
        return pd.DataFrame({"lower": iv[:, 0], "upper": iv[:, 1]}, index=frame.index)

    def predict_set(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The graph's conformal `prediction_set` output (classification run with task.coverage): one bool
        column per class, True where the class is in the row's set, on frame's index."""
        if "prediction_set" not in self._outputs():
            raise UserError("predict_set", "this model has no `prediction_set` output",
                            "Fit a classifier with task.coverage=0.9 (or another level).")
        return pd.DataFrame(self._score(frame, "prediction_set").astype(bool), index=frame.index,
                            columns=self.classes)

    def export_trial(self, trial: int, out_dir: str | os.PathLike[str]) -> Run:
        """Trial `trial` of this run (a number from the leaderboard) refit with its searched configuration,
        exported and parity-gated into `out_dir`, a run folder of its own, as `automl export RUN_DIR --trial N
        --out DIR` does. Raises UserError for an unknown or unfinished trial and RunFailed when its graph
        fails the gate.

        The refit runs in a fresh `automl export` process, not a fork of this one: a fork of a process in
        which OpenMP threads ran (a HistGradientBoosting or LightGBM fitted in a notebook) can hang in libgomp."""
        check_export(self.dir, trial, out_dir)  # user errors here, in one line, before a process starts
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[1]), *filter(None, [os.environ.get("PYTHONPATH")])])}
        p = subprocess.run([sys.executable, "-m", "automl", "export", str(self.dir), "--trial", str(trial),
                            "--out", str(out_dir)], env=env, capture_output=True, text=True)
        result = Run(out_dir)
        if p.returncode == 2 or not result.paths.manifest.exists():
            lines = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")] or p.stderr.splitlines()[-1:]
            raise RuntimeError(f"automl export failed (exit {p.returncode}): {' '.join(lines)[:2000]}")
        if result.manifest.status != "COMPLETE":
            raise RunFailed(result)
        return result

def load(run_dir: str | os.PathLike[str]) -> Run:
    """The run folder `run_dir` (from `fit`, the `automl` command or a sweep job) as a Run."""
    paths = RunPaths(Path(run_dir))
    if not paths.manifest.is_file():
        raise UserError("run_dir", f"'{run_dir}' is not an automl run folder (no manifest.json)",
                        "Point to a folder a run wrote, e.g. outputs/<date>/<time>_<name>.")
    return Run(paths.root)


def fit(data: str | os.PathLike[str] | pd.DataFrame | None = None, target: str | None = None, *,
        overrides: Sequence[str] = (), output_dir: str | os.PathLike[str] | None = None,
        config_dir: str | os.PathLike[str] | None = None) -> Run:
    """Run one search, as `automl data.path=DATA task.target=TARGET OVERRIDES...` does; return its Run.

    data: a CSV or Parquet file (or anything `data.path` takes), or a pandas DataFrame. A frame is
        written to the run folder as data.parquet a slice at a time (never a second whole copy in
        memory) and the run reads it from there, so it resumes and its manifest hashes the rows.
        None: the data the config names (the bundled demo, or your experiment's).
    target: the column to predict (task.target).
    overrides: Hydra overrides, as on the command line (["budget.time_s=60", "task.metric=mae",
        "+experiment=churn"]); composed with the same schema, so a misspelt key raises UserError.
    output_dir: the run folder; default outputs/<date>/<time>_<data name> under the current folder,
        as the CLI (hydra.run.dir). The same folder with the same data and config resumes the study.
    config_dir: your own config folder, searched after the packaged conf/ (the CLI's --config-dir).

    Raises UserError for a config or data mistake (before anything is written) and RunFailed when the
    run ends without a model. The budget counts from this call. Log lines go to the `automl` logger
    (logging.basicConfig(level=logging.INFO) shows the trials); library warnings are the caller's.
    """
    started = time.time()
    frame = data if isinstance(data, pd.DataFrame) else None
    _check_not_twice(overrides, data is not None, target is not None)
    cfg = compose(overrides, config_dir, with_hydra=True)
    if frame is not None:
        if cfg.data.tables:
            raise UserError("data.tables", "is set, but a DataFrame is one table",
                            "Pass the tables as files in data.tables (and data.path), not a frame.")
        check_frame_columns(frame)
        if _is_default_name(cfg):
            cfg.data.name = FRAME_NAME
        cfg.data.query, cfg.data.table = "", ""
    elif data is not None:
        cfg.data.path = os.fspath(data)
    if target is not None:
        cfg.task.target = target
    run_dir = Path(output_dir if output_dir is not None else _default_run_dir(cfg))
    if frame is not None:
        cfg.data.path = str(RunPaths(run_dir.absolute()).frame)
    with open_dict(cfg):
        del cfg["hydra"]
    config = to_run_config(cfg)
    validate_config(config)  # before the frame is written: a config mistake costs nothing
    if frame is not None:
        if config.task.target not in frame.columns:
            cols = [str(c) for c in frame.columns]
            raise UserError("task.target", f"'{config.task.target}' is not a column of the frame",
                            f"Set target to one of: {', '.join(cols[:20])}{' ...' if len(cols) > 20 else ''}.")
        write_frame(frame, Path(config.data.path))
    elif not config.data.tables and not is_url(config.data.path):  # a wrong path is told before the folder exists
        open_source(config.data.path, query=config.data.query, table=config.data.table)
    manifest = run_pipeline(config, str(run_dir), start=started)
    result = Run(run_dir)  # read back from the folder, as load() does: the same object either way
    if manifest.status != "COMPLETE":
        raise RunFailed(result)
    return result


def _check_not_twice(overrides: Sequence[str], data: bool, target: bool) -> None:
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        if (key == "data.path" and data) or (key == "task.target" and target):
            arg = "data" if key == "data.path" else "target"
            raise UserError(key, f"is given twice (the {arg} argument and an override)", "Give it once.")


def _is_default_name(cfg: Any) -> bool:
    """Whether data.name is still the schema's default (the data file's stem), not the user's choice."""
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(cfg.data, resolve=False)
    return isinstance(raw, dict) and raw.get("name") == "${stem:${data.path},${data.table}}"


def _default_run_dir(cfg: Any) -> str:
    """hydra.run.dir as the CLI resolves it (outputs/<date>/<time>_<data name>, or the user's setting)."""
    from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue

    try:
        return str(cfg.hydra.run.dir)
    except (MissingMandatoryValue, InterpolationToMissingValueError):
        raise UserError("data.path", "is not set", "Pass data= (a file or a DataFrame) or data.path=... in "
                        "overrides.") from None
