"""tracking=mlflow: one MLflow run per automl run, written from the finished run folder.

What the MLflow run holds:
- params: the resolved config, flattened (`search.fixed.lightgbm.num_leaves`, `budget.time_s`, ...);
- metrics: CV and holdout scores of the shipped model, every holdout metric, time used, trial counts and
  stage timings; and each trial's CV score as the step metric `trial_cv` (step = trial number) with
  `trial_best` beside it. Step metrics, not a child run per trial: a long search runs thousands of trials,
  and a child run each would cost several requests per trial and bury the runs a user compares in the
  experiment's run list; the per-trial params are in the leaderboard.csv artefact. Child runs are kept
  for what the user compares: the jobs of a --multirun sweep, grouped under one parent run;
- tags: engine version, git sha, data SHA-256, task, metric, status, shipped family, run folder;
- artefacts: model.onnx, model_card.md, report.html, leaderboard.csv, profile.json, manifest.json and
  Hydra's resolved config; and the model as an MLflow pyfunc named `model` (automl/tracking/onnx_pyfunc.py),
  registered under tracking.register_as when that is set.

Tracking runs after the run folder is written, so a tracking server that is down or refuses changes
nothing there: the run says once that tracking failed and ends as it would have. mlflow is imported
only here, only when tracking=mlflow.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import time
from collections.abc import Iterator
from enum import Enum
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from automl.config.schema import RunConfig, TrackingConfig
from automl.io import RunPaths
from automl.manifest import Manifest, read_manifest
from automl.urls import redact

log = logging.getLogger("automl")
SWEEP_TAG = "automl.sweep_dir"  # the parent run of a --multirun sweep carries the sweep folder
ARTEFACTS = ("model.onnx", "model_card.md", "report.html", "leaderboard.csv", "profile.json", "manifest.json",
             ".hydra/config.yaml")
MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
REDACTED = ("data.path", "search.storage", "tracking.uri")  # may hold a database password


def flat_params(obj: Any, prefix: str = "") -> dict[str, str]:
    """A (nested) config as "a.b.c" -> str(value); lists as their repr, enums as their value."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        out: dict[str, str] = {}
        for k, v in obj.items():
            out.update(flat_params(v, f"{prefix}{k}."))
        return out if out or not prefix else {prefix[:-1]: "{}"}
    value = obj.value if isinstance(obj, Enum) else obj
    return {prefix[:-1]: str(value)[:MAX_PARAM_CHARS]}


def run_params(cfg: RunConfig) -> dict[str, str]:
    params = flat_params(cfg)
    for k in REDACTED:
        if k in params:
            params[k] = redact(params[k])
    return params


def run_metrics(m: Manifest) -> dict[str, float]:
    """The run's numbers: scores of the shipped model, time, trial counts (missing ones left out)."""
    final, s = m.final, m.search
    out: dict[str, Any] = {
        "cv_score": final.get("cv_mean"), "holdout_score": final.get("holdout_score"),
        "holdout_score_onnx": final.get("holdout_score_onnx"),
        "parity_max_diff": (final.get("parity") or {}).get("max_diff"),
        "time_used_s": m.budget.get("used_s"), "time_budget_s": m.budget.get("time_s"),
        "trials_total": s.get("trials_total"), "trials_completed": s.get("completed"),
        "trials_failed": s.get("failed"), "trials_pruned": s.get("pruned"),
    }
    out.update({f"holdout_{k}": v for k, v in (final.get("holdout_metrics") or {}).items()})
    out.update({f"time_{k}": v for k, v in m.timings.items()})
    return {k: float(v) for k, v in out.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def trial_steps(paths: RunPaths, greater_is_better: bool) -> list[tuple[str, float, int]]:
    """(metric, value, step) per completed trial: its CV score and the best so far, by trial number."""
    import pandas as pd

    if not paths.leaderboard.is_file():
        return []
    lb = pd.read_csv(paths.leaderboard)
    lb = lb[pd.to_numeric(lb["trial"], errors="coerce").notna() & lb["cv_mean"].notna()]
    lb = lb.assign(trial=lb["trial"].astype(int)).sort_values("trial")
    out: list[tuple[str, float, int]] = []
    best: float | None = None
    for trial, cv in zip(lb["trial"], lb["cv_mean"].astype(float), strict=True):
        best = cv if best is None or (cv > best if greater_is_better else cv < best) else best
        out += [("trial_cv", cv, int(trial)), ("trial_best", best, int(trial))]
    return out


def run_tags(m: Manifest, paths: RunPaths) -> dict[str, str]:
    tags = {"automl.engine_version": m.engine_version, "automl.git_sha": m.git_sha or "",
            "automl.git_dirty": str(m.git_dirty), "automl.data_sha256": str(m.data.get("sha256", "")),
            "automl.data_name": str(m.data.get("name", "")), "automl.task": m.task, "automl.metric": m.metric,
            "automl.status": m.status, "automl.family": str(m.final.get("family", "")),
            "automl.run_dir": str(paths.root.resolve()),
            "mlflow.note.content": f"automl run of {m.data.get('name')} -> {m.target}: {m.status}"}
    return {k: v for k, v in tags.items() if v}


def sweep_dir() -> Path | None:
    """The sweep folder when this run is a job of a Hydra --multirun, else None."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    if hc.mode is None or hc.mode.name != "MULTIRUN":
        return None
    return Path(str(hc.sweep.dir)).resolve()


def connect(t: TrackingConfig) -> Any:
    """mlflow, pointed at tracking.uri, with requests that fail fast (one retry) rather than MLflow's
    default of 7 retries with exponential backoff (minutes against a server that is down)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, int(t.timeout_s))))
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # the run's log line says where
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # its "View run at" lines: ours says where
    if t.uri:
        mlflow.set_tracking_uri(t.uri)
    return mlflow


def sweep_parent(client: Any, experiment_id: str, sweep: Path) -> str:
    """The parent run of the sweep (found by its tag, else created): its jobs' runs hang under it."""
    quoted = str(sweep).replace("'", "\\'")
    found = client.search_runs([experiment_id], filter_string=f"tags.`{SWEEP_TAG}` = '{quoted}'", max_results=1)
    if found:
        return str(found[0].info.run_id)
    run = client.create_run(experiment_id, run_name=f"sweep {sweep.name}",
                            tags={SWEEP_TAG: str(sweep), "automl.kind": "sweep"})
    return str(run.info.run_id)


def log_batches(client: Any, run_id: str, params: dict[str, str], metrics: list[tuple[str, float, int]]) -> None:
    """Params and metrics in as few requests as MLflow's batch limits allow (100 params, 1000 metrics)."""
    from mlflow.entities import Metric, Param

    items = list(params.items())
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=[Param(k, v) for k, v in items[i:i + 100]])
    now = int(time.time() * 1000)
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=[Metric(k, v, now, step) for k, v, step in metrics[i:i + 1000]])


def log_model(mlflow: Any, run_id: str, paths: RunPaths, register_as: str) -> None:
    """model.onnx as the pyfunc model `model`, registered under `register_as` when set."""
    import automl.tracking.onnx_pyfunc as onnx_pyfunc

    reqs = []
    for p in ("onnxruntime", "numpy", "pandas"):
        try:
            reqs.append(f"{p}=={importlib_metadata.version(p)}")
        except importlib_metadata.PackageNotFoundError:
            reqs.append(p)
    with mlflow.start_run(run_id=run_id):
        mlflow.pyfunc.log_model(name="model", python_model=onnx_pyfunc.__file__,
                                artifacts={onnx_pyfunc.ARTIFACT: str(paths.model)},
                                pip_requirements=reqs, registered_model_name=register_as or None)


def log_run(cfg: RunConfig, paths: RunPaths) -> tuple[str, str]:
    """Log the finished run folder as one MLflow run; returns (run id, experiment id)."""
    mlflow = connect(cfg.tracking)
    client = mlflow.MlflowClient()
    experiment = mlflow.set_experiment(cfg.tracking.experiment)
    exp_id = experiment.experiment_id
    m = read_manifest(paths)
    tags = run_tags(m, paths)
    sweep = sweep_dir()
    if sweep is not None:
        tags["mlflow.parentRunId"] = sweep_parent(client, exp_id, sweep)
    run_id = client.create_run(exp_id, run_name=paths.root.name, tags=tags).info.run_id
    try:
        metrics = [(k, v, 0) for k, v in run_metrics(m).items()] + trial_steps(paths, m.greater_is_better)
        log_batches(client, run_id, run_params(cfg), metrics)
        for name in ARTEFACTS:
            f = paths.root / name
            if f.is_file():
                client.log_artifact(run_id, str(f), artifact_path=str(Path(name).parent) if "/" in name else None)
        if m.status == "COMPLETE" and paths.model.is_file():
            log_model(mlflow, run_id, paths, cfg.tracking.register_as)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED" if m.status == "COMPLETE" else "FAILED")
    return run_id, exp_id


def reason(e: BaseException) -> str:
    """One short line for why tracking failed: the OS error of a refused connection, else the message's
    first line."""
    text = str(e).strip()
    errno = re.search(r"\[Errno -?\d+\] [^\"')]+", text)
    first = errno.group(0) if errno else (text.splitlines() or [""])[0].split(" Response body:")[0][:200]
    return redact(f"{type(e).__name__}: {first}" if first else type(e).__name__)


@contextlib.contextmanager
def quiet_retries() -> Iterator[None]:
    """urllib3 logs each retry as a warning: the failure is told once, by track()."""
    logger = logging.getLogger("urllib3")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def track(cfg: RunConfig, paths: RunPaths) -> str | None:
    """tracking=mlflow: the MLflow run's id, or None (no tracking, or it failed: said once, run unchanged)."""
    if cfg.tracking.backend != "mlflow":
        return None
    where = redact(cfg.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI", "")
                   or "the default store sqlite:///mlflow.db")
    t = time.time()
    try:
        with quiet_retries():
            run_id, exp_id = log_run(cfg, paths)
    except Exception as e:
        log.warning("tracking failed (MLflow at %s: %s); the run folder is complete and unchanged", where, reason(e))
        return None
    url = f"{where.rstrip('/')}/#/experiments/{exp_id}/runs/{run_id}" if where.startswith("http") else where
    log.info("tracked: MLflow run %s in experiment '%s' (%s, %.1fs)", run_id, cfg.tracking.experiment, url,
             time.time() - t)
    return str(run_id)


_sweep_failed: set[Path] = set()  # sweeps whose parent run could not be made: not tried again at the end


def open_sweep(t: TrackingConfig, sweep: Path) -> None:
    """Before a --multirun sweep's jobs: create its parent run (jobs running at once then share it)."""
    try:
        with quiet_retries():
            mlflow = connect(t)
            experiment = mlflow.set_experiment(t.experiment)
            sweep_parent(mlflow.MlflowClient(), experiment.experiment_id, sweep.resolve())
    except Exception as e:
        _sweep_failed.add(sweep.resolve())
        log.warning("tracking the sweep failed (MLflow: %s); the jobs still run", reason(e))


def close_sweep(t: TrackingConfig, sweep: Path, files: list[Path]) -> None:
    """After a --multirun sweep: the parent run gets the sweep's summary files and is marked finished."""
    if sweep.resolve() in _sweep_failed:
        return
    try:
        with quiet_retries():
            mlflow = connect(t)
            client = mlflow.MlflowClient()
            experiment = client.get_experiment_by_name(t.experiment)
            if experiment is None:
                return
            parent = sweep_parent(client, experiment.experiment_id, sweep.resolve())
            for f in files:
                if f.is_file():
                    client.log_artifact(parent, str(f))
            client.set_terminated(parent, "FINISHED")
    except Exception as e:
        log.warning("tracking the sweep failed (MLflow: %s); the sweep folder is complete", reason(e))
