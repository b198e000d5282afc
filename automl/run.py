"""Orchestration: load -> profile -> search -> refit/export -> reports. Typed in, files out."""
from __future__ import annotations

import json
import logging
import os
import platform
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automl import __version__
from automl.config.schema import RunConfig
from automl.errors import UserError
from automl.io import RunPaths, write_bytes, write_json, write_text

log = logging.getLogger("automl")
PROCESS_START = time.time()  # the budget counts from process start (cli may set it earlier)
_PACKAGES = ["scikit-learn", "optuna", "catboost", "skl2onnx", "onnx", "onnxruntime", "onnxmltools",
             "hydra-core", "pandas", "numpy", "protobuf"]


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "automl": __version__}
    for p in _PACKAGES:
        try:
            out[p] = importlib_metadata.version(p)
        except importlib_metadata.PackageNotFoundError:
            pass
    return out


def _git_sha() -> dict[str, Any]:
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=5).stdout.strip())
        return {"git_sha": sha or None, "git_dirty": dirty if sha else None}
    except Exception:
        return {"git_sha": None, "git_dirty": None}


def prepare_target(df: pd.DataFrame, target: str, task: str) -> tuple[np.ndarray, list[Any] | None]:
    y = df[target]
    if task == "regression":
        v = pd.to_numeric(y, errors="coerce")
        if v.isna().any():
            bad = y[v.isna()].iloc[0]
            raise UserError(f"column '{target}'", f"regression needs a numeric target, but it holds {bad!r}",
                            "Set task.type=binary/multiclass, or clean the column.")
        v = v.to_numpy(dtype=np.float64)
        if not np.isfinite(v).all():
            raise UserError(f"column '{target}'", "the target holds +/-inf", "Remove or fix those rows.")
        return v, None
    if pd.api.types.is_float_dtype(y) and np.all(np.mod(y.to_numpy(), 1) == 0):
        y = y.astype(np.int64)
    if pd.api.types.is_bool_dtype(y):
        y = y.astype(np.int64)
    if not pd.api.types.is_integer_dtype(y):
        y = y.astype(str)
    classes, codes = np.unique(y.to_numpy(), return_inverse=True)
    return codes.astype(np.int64), [c.item() if hasattr(c, "item") else c for c in classes]


def run(config: RunConfig, output_dir: str, start: float | None = None) -> dict[str, Any]:
    from automl.config.validate import resolve_task, validate_config
    from automl.data.load import file_sha256, read_table
    from automl.data.profile import build_profile
    from automl.data.roles import infer_schema, infer_task, to_model_frame
    from automl.data.split import check_class_counts, cv_folds, holdout_split
    from automl.estimators import REGISTRY
    from automl.evaluation.metrics import get_metric

    t_start = start or PROCESS_START
    timings: dict[str, float] = {}
    paths = RunPaths(Path(output_dir))
    paths.root.mkdir(parents=True, exist_ok=True)
    validate_config(config)
    cfg = config
    target = cfg.task.target

    t = time.time()
    df = read_table(cfg.data.path)
    if target not in df.columns:
        cols = list(df.columns)
        raise UserError("task.target", f"'{target}' is not a column of {Path(cfg.data.path).name}",
                        f"Set task.target to one of: {', '.join(cols[:20])}{' ...' if len(cols) > 20 else ''}.")
    if df[target].isna().all():
        raise UserError(f"column '{target}'", "the target is missing in every row", "Choose a target with values.")
    n_missing_target = int(df[target].isna().sum())
    if n_missing_target:
        log.warning("dropping %d rows whose target '%s' is missing", n_missing_target, target)
        df = df[df[target].notna()].reset_index(drop=True)
    for col in cfg.data.id_columns + cfg.data.drop_columns:
        if col not in df.columns:
            raise UserError("data.id_columns" if col in cfg.data.id_columns else "data.drop_columns",
                            f"'{col}' is not a column of the data", "Remove it or fix its spelling.")
    inferred = infer_task(df[target])
    n_classes_raw = int(df[target].nunique())
    task, metric_name = resolve_task(cfg, inferred, target, n_classes_raw)
    metric = get_metric(metric_name)
    y_all, classes = prepare_target(df, target, task)
    n_classes = len(classes) if classes is not None else 0
    if task != "regression":
        check_class_counts(y_all, cfg.search.cv_folds, cfg.search.holdout, target)
    elif len(df) < 2 * cfg.search.cv_folds + 2:
        raise UserError("data.path", f"{len(df)} rows are too few for {cfg.search.cv_folds}-fold CV and a holdout",
                        "Provide more rows or lower search.cv_folds.")
    schema = infer_schema(df, target, list(cfg.data.id_columns), list(cfg.data.drop_columns))
    timings["load_s"] = time.time() - t

    t = time.time()
    profile = build_profile(df, target, task, schema, cfg.seed)
    write_json(paths.profile, profile)
    timings["profile_s"] = time.time() - t
    for w in profile["warnings"]:
        log.warning("data: %s", w)

    data_sha = file_sha256(cfg.data.path)
    X_all = to_model_frame(df, schema)
    tr, ho = holdout_split(y_all, task, cfg.search.holdout, cfg.seed)
    X, y = X_all.iloc[tr].reset_index(drop=True), y_all[tr]
    X_hold, y_hold = X_all.iloc[ho].reset_index(drop=True), y_all[ho]
    folds = cv_folds(y, task, cfg.search.cv_folds, cfg.seed)
    families = [k for k in cfg.estimators.include if k not in cfg.estimators.exclude
                and task in REGISTRY.get(k).tasks]
    from automl.search.objective import Candidate, SearchData

    data = SearchData(X=X, y=y, folds=folds, schema=schema,
                      missing_numeric=[c for c in schema.names("numeric") if X[c].isna().any()],
                      task=task, metric=metric, n_classes=n_classes, seed=cfg.seed, families=families,
                      space_dir=cfg.search.space_dir, n_jobs=max(1, os.cpu_count() or 1))

    from automl.search.study import Budget, make_study, recover_orphans, run_search, warm_start

    budget = Budget(start=t_start, time_s=cfg.budget.time_s, n_trials=cfg.budget.n_trials,
                    trial_time_s=cfg.budget.trial_time_s, trial_memory_mb=_trial_memory_mb(cfg))
    study = make_study(paths.study, cfg.search.study_name, metric.direction, cfg.search.sampler, cfg.seed,
                       cfg.search.n_startup_trials, cfg.search.multivariate, cfg.search.pruner)
    prev_sha = study.user_attrs.get("data_sha256")
    if prev_sha and prev_sha != data_sha:
        raise UserError("hydra.run.dir", "this run folder's study was made from different data",
                        "Use a new run folder (hydra.run.dir) or the original data file.")
    resumed = bool(study.trials)
    if not prev_sha:
        study.set_user_attr("data_sha256", data_sha)
    orphans = recover_orphans(study)
    if resumed:
        log.info("resuming study with %d earlier trials (%d orphaned trial(s) marked failed)",
                 len(study.trials), orphans)
    warm_start(study, data)

    from automl.reporting.progress import Progress

    t = time.time()
    with Progress(metric_name, budget) as progress:
        result = run_search(study, data, budget, on_trial=progress.update, oof_dir=paths.oof)
    timings["search_s"] = time.time() - t
    log.info("search done: %d complete, %d failed, %d pruned/skipped (%s)", result.completed, result.failed,
             result.pruned, result.stopped_because)

    manifest: dict[str, Any] = {
        "engine_version": __version__, "versions": _versions(), **_git_sha(),
        "seed": cfg.seed, "data": {"path": str(Path(cfg.data.path).resolve()), "name": cfg.data.name,
                                    "sha256": data_sha, "rows": len(df), "columns": df.shape[1]},
        "target": target, "task": task, "metric": metric_name, "greater_is_better": metric.greater_is_better,
        "classes": classes, "budget": {"time_s": cfg.budget.time_s, "n_trials": cfg.budget.n_trials,
                                       "trial_time_s": budget.trial_time_s, "trial_memory_mb": budget.trial_memory_mb},
        "rows_dropped_missing_target": n_missing_target, "resumed": resumed, "orphans_recovered": orphans,
        "search": {"sampler": cfg.search.sampler, "cv_folds": len(folds), "families": families,
                   "search_rows": len(y), "holdout_rows": len(y_hold), "completed": result.completed,
                   "failed": result.failed, "pruned": result.pruned, "stopped_because": result.stopped_because,
                   "trials_total": len(study.trials)},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t_start)),
    }

    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=[TrialState.COMPLETE])]
    done.sort(key=lambda t: t.value, reverse=metric.greater_is_better)
    final: dict[str, Any] = {}
    status, error = "COMPLETE", ""
    if not done:
        status, error = "FAILED", "no trial completed within the budget"
    else:
        from automl.export.onnx import metadata
        from automl.refit import refit_export
        from automl.search.supervisor import COMPLETE, supervise

        meta = metadata(schema, task, target, metric_name, classes, __version__)
        t = time.time()
        failures: list[str] = []
        for t_ in done[:3]:
            params = {k.split(".", 1)[1]: v for k, v in t_.params.items() if k.startswith(t_.params["family"] + ".")}
            pre = {k.split(".", 1)[1]: v for k, v in t_.params.items() if k.startswith("pre.")}
            cand = Candidate(t_.params["family"], params, pre)
            limit = max(budget.left() - budget.reports_s, 5.0 + 2 * t_.user_attrs.get("fold_fit_s", 1.0))
            outcome = supervise(refit_export, (data, cand, X_hold, y_hold, classes, meta, cfg.export.parity_tol,
                                               cfg.export.parity_rows), timeout_s=limit, memory_mb=0)
            if outcome.status == COMPLETE and "model" in outcome.value:
                final = outcome.value
                final.update(trial=t_.number, family=cand.family, params=params, preprocessing=cand.summary(),
                             cv_mean=t_.value)
                if failures:
                    final["fallback_reason"] = ("a better-ranked pipeline could not be shipped: " + "; ".join(failures))
                break
            why = outcome.value.get("parity_error") if outcome.status == COMPLETE else f"{outcome.status}: {outcome.error}"
            failures.append(f"trial {t_.number} ({cand.family}): {why}")
            log.error("final model from trial %d failed: %s", t_.number, why)
        timings["final_s"] = time.time() - t
        if not final:
            status, error = "FAILED", "no candidate passed refit, export and the parity gate: " + "; ".join(failures)

    if final:
        model_bytes = final.pop("model")
        write_bytes(paths.model, model_bytes)
        final["model_bytes"] = len(model_bytes)
        import hashlib

        final["model_sha256"] = hashlib.sha256(model_bytes).hexdigest()
        write_json(paths.parity, final["parity"])
        hp = final.pop("holdout_pred", None)
        if hp is not None:
            np.save(paths.root / "holdout_predictions.npy", hp)
    leaderboard = _leaderboard(study, metric, final)
    write_text(paths.leaderboard, leaderboard.to_csv(index=False))
    write_text(paths.trials, study.trials_dataframe().to_csv(index=False))
    manifest.update(status=status, error=error, final={k: v for k, v in final.items() if k != "oof"})
    timings["total_s"] = time.time() - t_start
    manifest["timings"] = {k: round(v, 3) for k, v in timings.items()}
    manifest["budget"]["used_s"] = round(timings["total_s"], 2)
    manifest["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    from automl.reporting.model_card import render

    write_text(paths.model_card, render(manifest, profile, leaderboard))
    write_json(paths.manifest, manifest)
    if status != "COMPLETE":
        log.error("run failed: %s", error)
    else:
        log.info("best: trial %d %s, CV %s=%.5g, holdout %.5g (onnx %.5g); wrote %s",
                 final["trial"], final["family"], metric_name, final["cv_mean"], final.get("holdout_score", np.nan),
                 final.get("holdout_score_onnx", np.nan), paths.model)
    log.info("run folder: %s (%.1fs of %.0fs budget)", paths.root, timings["total_s"], cfg.budget.time_s)
    return manifest


def _leaderboard(study: Any, metric: Any, final: dict[str, Any]) -> pd.DataFrame:
    from automl.evaluation.leaderboard import build_leaderboard

    return build_leaderboard(study, metric.greater_is_better, final.get("trial"), final.get("holdout_score"))


def _trial_memory_mb(cfg: RunConfig) -> float:
    if cfg.budget.trial_memory_mb:
        return float(cfg.budget.trial_memory_mb)
    import psutil

    return 0.8 * psutil.virtual_memory().available / 2**20


def manifest_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())
