"""The outputs stage: the run folder's files from the other stages' results, the manifest built once."""
from __future__ import annotations

import contextlib
import hashlib
import logging
import platform
import subprocess
import time
from collections.abc import Callable
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd

from automl.config.schema import RunConfig
from automl.evaluation.leaderboard import build_leaderboard
from automl.export.measure import measure
from automl.export.onnx import parity_frame
from automl.export.reference_profile import write_reference_profile
from automl.export.relational_parity import end_to_end_parity
from automl.export.variants import variants
from automl.io import RunPaths, write_bytes, write_json, write_text
from automl.manifest import Manifest
from automl.reporting.explain import onnx_latency
from automl.reporting.model_card import render
from automl.reporting.relational_card import card_section
from automl.reporting.report import write_report
from automl.search.study import study_objectives
from automl.search.supervisor import COMPLETE, supervise
from automl.stages.constraints import card_section as deployment_section
from automl.stages.final import FinalResult
from automl.stages.prepare import Prepared
from automl.stages.refit import onnx_score
from automl.stages.search import Searched
from automl.urls import redact
from automl.version import __version__

log = logging.getLogger("automl")
OFF_DRIVER_S = 120.0  # a time limit for a measurement or the report in a child: it never fails the run
ALLOWANCE_S = 3.0  # stated allowance over budget.time_s: interpreter exit after the last write, estimate error
PACKAGES = ["scikit-learn", "optuna", "catboost", "skl2onnx", "onnx", "onnxruntime", "onnxmltools",
            "hydra-core", "pandas", "numpy", "protobuf"]


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "automl": __version__}
    for p in PACKAGES:
        with contextlib.suppress(importlib_metadata.PackageNotFoundError):
            out[p] = importlib_metadata.version(p)
    return out


def git_sha() -> dict[str, Any]:
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():  # an installed wheel: the folder above site-packages is not our checkout
        return {"git_sha": None, "git_dirty": None}
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=5).stdout.strip())
        return {"git_sha": sha or None, "git_dirty": dirty if sha else None}
    except Exception:
        return {"git_sha": None, "git_dirty": None}


def data_source(cfg: RunConfig, src: Any) -> dict[str, str]:
    """Where the data came from, for the manifest: a database URL with its password masked."""
    if src is not None and src.kind == "sql":
        return {"path": src.sql.masked, "format": "sql", **({"table": src.sql.table} if src.sql.table
                                                            else {"query": src.sql.query})}
    return {"path": str(Path(cfg.data.path).resolve())}


def reproducible(cfg: RunConfig, n_workers: int, stopped_because: str, leaderboard: pd.DataFrame,
                 rescored: dict[str, Any] | None = None) -> dict[str, Any]:
    """Whether the same command gives the same leaderboard and predictions, and if not, why not."""
    why = []
    cut = [t["trial"] for t in (rescored or {}).get("trials", []) if t.get("fresh_cv") is None]
    if cut:
        why.append(f"trial(s) {cut} were not re-scored on fresh folds in the time kept for it (search.rescore), "
                   "which depends on machine load")
    if n_workers > 1:
        why.append(f"{n_workers} workers interleave their trials (set search.n_workers=1)")
    if not cfg.budget.n_trials:
        why.append("the search stopped on wall-clock time (set budget.n_trials for a fixed trial count)")
    elif not stopped_because.startswith("trial budget"):
        why.append(f"the search stopped before its trial count ({stopped_because})")
    timed = leaderboard["status"].isin(["TIMEOUT", "MEMOUT", "SKIPPED", "INTERRUPTED"]).sum()
    if timed:
        why.append(f"{timed} trial(s) ended on time or memory limits, which depend on machine load")
    return {"reproducible": not why, "why_not": why}


def start_manifest(cfg: RunConfig, prep: Prepared, searched: Searched, start: float) -> Manifest:
    """The manifest's facts known when the search has ended."""
    b, res, data = searched.budget, searched.result, searched.data
    m = Manifest(
        engine_version=__version__, versions=versions(), **git_sha(), seed=cfg.seed,
        data={**data_source(cfg, prep.src), "name": cfg.data.name, "sha256": prep.data_sha,
              "sha256_of": prep.data_sha_of, "rows": prep.shape[0], "columns": prep.shape[1]},
        target=cfg.task.target, task=prep.task, metric=prep.metric_name,
        greater_is_better=data.metric.greater_is_better, classes=prep.classes,
        budget={"time_s": cfg.budget.time_s, "n_trials": cfg.budget.n_trials, "trial_time_s": b.trial_time_s,
                "trial_memory_mb": b.trial_memory_mb, **prep.mem.to_json()},
        rows_dropped_missing_target=prep.n_missing_target, resumed=searched.resumed,
        orphans_recovered=searched.orphans,
        search={"sampler": cfg.search.sampler, "cv_folds": len(data.folds), "families": data.families,
                "rung_rows": data.rung_rows,
                "n_workers": prep.n_workers, "storage": redact(cfg.search.storage) or "journal",
                "fixed": data.fixed, "objectives": list(study_objectives(searched.study)),
                "imbalance": {"setting": str(cfg.search.imbalance).lower(), "searched": "imbalance" in data.spaces},
                "search_rows": len(data.y), "holdout_rows": len(prep.y_hold), "completed": res.completed,
                "failed": res.failed, "pruned": res.pruned, "stopped_because": res.stopped_because,
                "trials_total": sum(t.state.name != "WAITING" for t in searched.study.trials)},
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(start)))
    if prep.sampled is not None:
        m.data.update(rows=prep.sampled.scan.n_rows, rows_in_memory=len(prep.X_all))
        m.sampling = prep.sampled.info
    return m


def write_model(cfg: RunConfig, prep: Prepared, paths: RunPaths, final: dict[str, Any]) -> None:
    """model.onnx and what belongs to it: parity.json, the drift reference, holdout arrays, latency."""
    model_bytes = final.pop("model")
    write_bytes(paths.model, model_bytes)
    final["model_bytes"] = len(model_bytes)
    final["model_sha256"] = hashlib.sha256(model_bytes).hexdigest()
    # drift baseline: binned, no raw rows
    final["reference_profile_sha256"] = write_reference_profile(paths.root, prep.X_all, prep.schema)
    write_json(paths.parity, final["parity"])
    hp = final.pop("holdout_pred", None)
    if hp is not None:
        np.save(paths.holdout_predictions, hp)
        np.save(paths.holdout_labels, prep.y_hold)
    rows = prep.X_hold if len(prep.X_hold) else prep.data.X
    given = (final.get("constraints") or {}).get("measured")  # the constraint gate's own figures if it ran
    final.update(off_driver(deployment_figures, (model_bytes, rows, prep.schema.to_json(), given,
                                                 cfg.budget.time_s), "deployment cost and latency") or {})
    if cfg.export.variants:
        final["variants"] = lighter(cfg, prep, paths, model_bytes, final.get("decision_threshold"),
                                    final.pop("trim", None))


def deployment_figures(model_bytes: bytes, rows: pd.DataFrame, schema: list[dict[str, str]],
                       given: dict[str, Any] | None, budget_s: float) -> dict[str, Any]:
    """The deployment cost (as the constraints measure it) and the latency of the shipped graph."""
    out: dict[str, Any] = {}
    try:
        out["deployment"] = given or measure(model_bytes, rows, schema, time_limit_s=min(1.0, 0.01 * budget_s))
    except Exception as e:  # a measurement, never a reason to fail the run
        log.warning("deployment cost not measured: %s", e)
    try:
        out["latency"] = onnx_latency(model_bytes, rows, schema, time_limit_s=min(0.5, 0.01 * budget_s))
    except Exception as e:  # a measurement, never a reason to fail the run
        log.warning("latency not measured: %s", e)
    return out


def off_driver(fn: Callable[..., Any], args: tuple[Any, ...], what: str, timeout_s: float = OFF_DRIVER_S) -> Any:
    """fn(*args) in a forked child; its value, or None (with a warning) if the child failed. The driver's pages
    stay shared and the child's own allocations (onnxruntime sessions, matplotlib, ~50 MB each) die with it:
    in the driver they were what set its peak, the largest process of a run on small data (issue 17)."""
    out = supervise(_call, (fn, args), timeout_s=timeout_s, memory_mb=0)
    if out.status != COMPLETE:
        log.warning("%s: not done (%s)", what, out.error or out.status)
        return None
    return out.value


def _call(conn: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    return fn(*args)


def lighter(cfg: RunConfig, prep: Prepared, paths: RunPaths, model_bytes: bytes,
            threshold: float | None, trim_made: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """export.variants made, checked against model.onnx on the parity gate's rows, measured and scored."""
    hold = prep.X_hold if len(prep.X_hold) else prep.data.X
    rows = parity_frame(hold.iloc[:cfg.export.parity_rows], prep.schema, cfg.seed)
    data = prep.data
    score = ((lambda b: onnx_score(onnx.load_from_string(b), data, prep.X_hold, prep.y_hold, threshold, len(data.y)))
             if len(prep.y_hold) else None)
    try:
        return variants(model_bytes, list(cfg.export.variants), rows, hold, prep.schema.to_json(), prep.task,
                        cfg.export.variant_tol or cfg.export.parity_tol, score, paths.root, trim_made)
    except Exception as e:  # a lighter graph is an offer, never a reason to fail the run
        log.warning("variants not made: %s", e)
        return [{"kind": k, "kept": False, "why": f"{type(e).__name__}: {e}"} for k in cfg.export.variants]


def write_outputs(cfg: RunConfig, prep: Prepared, searched: Searched, fin: FinalResult, paths: RunPaths,
                  start: float, timings: dict[str, float]) -> Manifest:
    """Every file of the run folder after the search; returns the manifest as written."""
    manifest = start_manifest(cfg, prep, searched, start)
    manifest.ensemble_selection = fin.ensemble_selection
    final, status, error = fin.final, fin.status, fin.error
    if final:
        write_model(cfg, prep, paths, final)
    if final and cfg.data.tables:
        manifest.relational = end_to_end_parity(paths.root, prep.raw, paths.model, cfg.export.parity_tol)
        write_json(paths.relational_parity, manifest.relational)
        if not manifest.relational["passed"]:
            status, error = "FAILED", f"raw-table parity failed: {manifest.relational}"
    study = searched.study
    leaderboard = build_leaderboard(study, manifest.greater_is_better, final, searched.data.fixed)
    write_text(paths.leaderboard, leaderboard.to_csv(index=False))
    write_text(paths.trials, study.trials_dataframe().to_csv(index=False))
    manifest.status, manifest.error = status, error
    manifest.final = {k: v for k, v in final.items() if k != "oof"}
    manifest.reproducible = reproducible(cfg, prep.n_workers, searched.result.stopped_because, leaderboard,
                                         fin.final.get("rescore"))

    def stamp() -> None:
        timings["total_s"] = time.time() - start
        manifest.timings = {k: round(v, 3) for k, v in timings.items()}
        manifest.budget["used_s"] = round(timings["total_s"], 2)

    stamp()
    manifest.budget["used_by_earlier_run_s"] = round(searched.used_before_s, 2)
    manifest.budget["allowance_s"] = ALLOWANCE_S
    study.set_user_attr("run_state", "finished")
    manifest.finished_at = time.strftime("%Y-%m-%dT%H:%M:%S")
    card = render(manifest, prep.profile, leaderboard)
    if final and cfg.data.tables:
        card += card_section(paths.root, manifest.relational or {})
    card += deployment_section(manifest.final)
    write_text(paths.model_card, card)
    # what is left of the budget after the report, less the manifest write and interpreter exit
    left = searched.budget.left() - 1.0
    timings["report_s"] = off_driver(write_report, (paths.root, manifest, study, left), "report.html",
                                     max(left, 0.0) + OFF_DRIVER_S) or 0.0
    stamp()
    write_json(paths.manifest, manifest.to_json())
    return manifest
