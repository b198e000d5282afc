"""Orchestration: load -> profile -> search -> refit/export -> reports. Typed in, files out."""
from __future__ import annotations

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
from automl.search.storage import redact

log = logging.getLogger("automl")
PROCESS_START = time.time()
ALLOWANCE_S = 3.0
MIN_FINAL_S = 10.0  # the budget counts from process start (cli may set it earlier)
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
    values, codes = np.unique(y.to_numpy(), return_inverse=True)
    # class order = order of the labels as strings: the convention of scikit-learn's LabelBinarizer, which
    # scorers that take probability columns without names (e.g. log_loss(labels=...)) assume
    order = sorted(range(len(values)), key=lambda i: str(values[i]))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    classes = [values[i].item() if hasattr(values[i], "item") else values[i] for i in order]
    return rank[codes].astype(np.int64), classes


def run(config: RunConfig, output_dir: str, start: float | None = None) -> dict[str, Any]:
    from automl.config.validate import resolve_task, validate_config
    from automl.data.load import source_sha256
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
    from automl.memory import resolve_budget

    mem = resolve_budget(cfg.budget.memory_mb)  # data over the memory budget is scanned and sampled
    sampled = src = None
    if cfg.data.tables:  # several tables: point-in-time aggregates joined onto the target table's rows
        from automl.data.relational import build_flat_frame

        df = build_flat_frame(cfg.data, target, paths.root)
    else:
        from automl.data.large import load_for_run
        from automl.data.scan import open_source

        src = open_source(cfg.data.path, query=cfg.data.query, table=cfg.data.table)
        # the export stack (scikit-learn, skl2onnx, onnxruntime, the boosting libraries) before the driver
        # measures itself for the data allowance: it holds them all run. After the path checks, so a
        # wrong path is still told in about a second
        from automl.export.converters import register_converters

        register_converters()
        df, sampled = load_for_run(cfg.data.path, target, mem, cfg.search.n_workers or 1, cfg.search.holdout,
                                   cfg.seed, cfg.data.max_rows, src=src)
    if target not in df.columns:
        cols = list(df.columns)
        raise UserError("task.target", f"'{target}' is not a column of {src.name if src else Path(cfg.data.path).name}",
                        f"Set task.target to one of: {', '.join(cols[:20])}{' ...' if len(cols) > 20 else ''}.")
    if df[target].isna().all():
        raise UserError(f"column '{target}'", "the target is missing in every row", "Choose a target with values.")
    n_missing_target = int(df[target].isna().sum()) if sampled is None else sampled.scan.missing_target
    if n_missing_target:
        log.warning("dropping %d rows whose target '%s' is missing", n_missing_target, target)
        df = df[df[target].notna()].reset_index(drop=True)
    for col in cfg.data.id_columns + cfg.data.drop_columns:
        if col not in df.columns:
            raise UserError("data.id_columns" if col in cfg.data.id_columns else "data.drop_columns",
                            f"'{col}' is not a column of the data", "Remove it or fix its spelling.")
    if len(df) < 10:
        raise UserError("data.path", f"{len(df)} data row(s) with a target are too few for cross-validation and a holdout",
                        "Provide at least a few dozen rows.")
    inferred = infer_task(df[target])
    n_classes_raw = int(df[target].nunique())
    task, metric_name = resolve_task(cfg, inferred, target, n_classes_raw)
    metric = get_metric(metric_name, _metric_minimum(cfg, metric_name))
    y_all, classes = prepare_target(df, target, task)
    n_classes = len(classes) if classes is not None else 0
    n_folds = cfg.search.cv_folds or (5 if len(df) * (1 - cfg.search.holdout) <= 4000 else 3)
    if task != "regression":
        check_class_counts(np.asarray(classes, dtype=object)[y_all], n_folds, cfg.search.holdout, target)
    elif len(df) < 2 * n_folds + 2:
        raise UserError("data.path", f"{len(df)} rows are too few for {n_folds}-fold CV and a holdout",
                        "Provide more rows or lower search.cv_folds.")
    schema = infer_schema(df, target, list(cfg.data.id_columns), list(cfg.data.drop_columns))
    timings["load_s"] = time.time() - t

    t = time.time()
    profile = build_profile(df, target, task, schema, cfg.seed)
    if sampled is not None:
        profile = sampled.merge_profile(profile, target, task)
    write_json(paths.profile, profile)
    timings["profile_s"] = time.time() - t
    for w in profile["warnings"]:
        log.warning("data: %s", w)

    data_sha, data_sha_of = source_sha256(src, cfg.data.path)
    if cfg.data.tables:  # a resumed study must see the same tables, not only the same target table
        from automl.data.relational import tables_sha256

        data_sha = tables_sha256(cfg.data)
    X_all = to_model_frame(df, schema)
    tr, ho = sampled.split() if sampled is not None else holdout_split(y_all, task, cfg.search.holdout, cfg.seed)
    X, y = X_all.iloc[tr].reset_index(drop=True), y_all[tr]
    X_hold, y_hold = X_all.iloc[ho].reset_index(drop=True), y_all[ho]
    folds = cv_folds(y, task, n_folds, cfg.seed)
    n_workers = resolve_workers(cfg, X.shape[0] * X.shape[1]) if sampled is None else (cfg.search.n_workers or 1)
    families = [k for k in cfg.estimators.include if k not in cfg.estimators.exclude
                and task in REGISTRY.get(k).tasks]
    from automl.preprocessing.imbalance import search_imbalance
    from automl.preprocessing.pipeline import indicator_columns
    from automl.search.objective import Candidate, SearchData

    data = SearchData(X=X, y=y, folds=folds, schema=schema,
                      missing_numeric=indicator_columns(X, schema.names("numeric")),
                      task=task, metric=metric, n_classes=n_classes, seed=cfg.seed, families=families,
                      space_dir=cfg.search.space_dir,
                      n_jobs=max(1, (os.cpu_count() or 1) // n_workers),
                      imbalance=search_imbalance(cfg.search.imbalance, task, metric, y),
                      tune_threshold=cfg.task.tune_threshold)

    from automl.search.budget import Budget, final_cost, last_resort
    from automl.search.parallel import run_workers
    from automl.search.study import make_study, recover_orphans, summarize, warm_start

    from automl.export.converters import register_converters

    register_converters()  # import the export stack once, before trials fork (done already for one table)
    df_shape = df.shape
    if not cfg.data.tables:  # several tables: the end-to-end parity check compares against this frame
        del df  # the model frame (X_all) holds what the run needs from here (large data: it is the peak)

    budget = Budget(start=t_start, time_s=cfg.budget.time_s, n_trials=cfg.budget.n_trials,
                    trial_time_s=cfg.budget.trial_time_s, trial_memory_mb=_trial_memory_mb(cfg, n_workers, mem),
                    refit_full=cfg.export.refit_full, reports_s=2.0 + report_allowance_s(cfg.budget.time_s))
    def make(seed_offset: int = 0) -> Any:
        return make_study(paths.study, cfg.search.study_name, metric.direction, cfg.search.sampler,
                          cfg.seed + seed_offset, cfg.search.n_startup_trials, cfg.search.multivariate,
                          cfg.search.pruner, constant_liar=n_workers > 1,
                          storage_url=cfg.search.storage, heartbeat_s=cfg.search.heartbeat_s)

    from automl.search import coordination as coord

    study = make()
    coord.check_owner(study, cfg.search.storage, str(paths.root))
    prev_sha = study.user_attrs.get("data_sha256")
    if prev_sha and prev_sha != data_sha:
        raise UserError("hydra.run.dir", "this run folder's study was made from different data",
                        "Use a new run folder (hydra.run.dir) or the original data file.")
    if sampled is not None:  # would more rows pay? measured before the search, on the holdout
        from automl.search.learning_curve import learning_curve

        t = time.time()
        sampled.info["learning_curve"] = learning_curve(data, X_hold, y_hold, min(max(0.12 * cfg.budget.time_s, 6.0), 60.0),
                                                        budget.trial_memory_mb)
        timings["learning_curve_s"] = time.time() - t
    final_data = data  # the rows the final model is fitted on: on sampled data, more than the search's
    if sampled is not None:
        # a resumed study keeps the sizes its trials (and their out-of-fold predictions) were made with
        sizes = study.user_attrs.get("sample_sizes")
        data, final_data = _size_samples(data, sampled, budget, len(y_hold), cfg, sizes)
        study.set_user_attr("sample_sizes", sampled.info["planned_rows"])
    resumed = bool(study.trials)
    if not prev_sha:
        study.set_user_attr("data_sha256", data_sha)
    orphans = recover_orphans(study)
    # a run that died (kill -9, power loss) left run_state=running: its time counts against this budget
    used_before = float(study.user_attrs.get("budget_used_s", 0.0)) if study.user_attrs.get("run_state") == "running" else 0.0
    if used_before:
        budget.time_s = max(cfg.budget.time_s - used_before, MIN_FINAL_S)
        log.info("the earlier run stopped after %.1fs of its %.0fs budget; %.1fs remain", used_before,
                 cfg.budget.time_s, budget.time_s)
    study.set_user_attr("run_state", "running")
    study.set_user_attr("budget_used_s", used_before)
    budget.used_before = used_before
    if resumed:
        log.info("resuming study with %d earlier trials (%d orphaned trial(s) marked failed)",
                 len(study.trials), orphans)
    warm_start(study, data, limit=cfg.budget.n_trials)
    # an exact trial count across all workers (coordination.py); a resumed study may hold more queued
    # trials than budget.n_trials, so a resume caps by counting finished trials instead
    tickets = cfg.budget.n_trials > 0 and not resumed
    n_tickets = coord.enqueue_tickets(study, cfg.budget.n_trials) if tickets else 0
    coord.publish(study, cfg, data, data_sha, budget, n_tickets, str(paths.root))
    log.info("other workers join with: %s", coord.join_command(cfg.search.storage, cfg.search.study_name, str(paths.study)))

    from functools import partial

    from automl.reporting.progress import Progress, log_trial

    t = time.time()
    try:
        with Progress(metric_name, budget) as progress:
            result = run_workers(n_workers, make, data, budget, paths.oof, progress.update, tickets,
                                 on_worker_trial=partial(log_trial, metric_name))
            coord.finish_search(study, budget)
    except KeyboardInterrupt:
        write_text(paths.leaderboard, _leaderboard(study, metric, {}).to_csv(index=False))
        log.error("interrupted: partial leaderboard written to %s; rerun the same command to resume", paths.leaderboard)
        raise
    timings["search_s"] = time.time() - t
    counts = summarize(study)
    result.completed, result.failed, result.pruned = counts["completed"], counts["failed"], counts["pruned"]
    log.info("search done: %d complete, %d failed, %d pruned/skipped (%s)", result.completed, result.failed,
             result.pruned, result.stopped_because)

    manifest: dict[str, Any] = {
        "engine_version": __version__, "versions": _versions(), **_git_sha(),
        "seed": cfg.seed, "data": {**_data_source(cfg, src), "name": cfg.data.name, "sha256": data_sha,
                                    "sha256_of": data_sha_of, "rows": df_shape[0], "columns": df_shape[1]},
        "target": target, "task": task, "metric": metric_name, "greater_is_better": metric.greater_is_better,
        "classes": classes, "budget": {"time_s": cfg.budget.time_s, "n_trials": cfg.budget.n_trials,
                                       "trial_time_s": budget.trial_time_s, "trial_memory_mb": budget.trial_memory_mb},
        "rows_dropped_missing_target": n_missing_target, "resumed": resumed, "orphans_recovered": orphans,
        "search": {"sampler": cfg.search.sampler, "cv_folds": len(folds), "families": families,
                   "n_workers": n_workers, "storage": redact(cfg.search.storage) or "journal",
                   "imbalance": {"setting": str(cfg.search.imbalance).lower(), "searched": "imbalance" in data.spaces},
                   "search_rows": len(data.y), "holdout_rows": len(y_hold), "completed": result.completed,
                   "failed": result.failed, "pruned": result.pruned, "stopped_because": result.stopped_because,
                   "trials_total": sum(t.state.name != "WAITING" for t in study.trials)},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t_start)),
    }
    manifest["budget"].update(mem.to_json())
    if sampled is not None:
        manifest["data"].update(rows=sampled.scan.n_rows, rows_in_memory=len(y_all))
        manifest["sampling"] = sampled.info

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

        levels = {c: sorted(set(X_all[c]) - {""})[:1000] for c in schema.names("categorical")}
        meta = metadata(schema, task, target, metric_name, classes, __version__,
                        {c: v for c, v in levels.items() if len(v) < 1000})
        t = time.time()

        def candidate(tr: Any) -> Candidate:
            fam = tr.params["family"]
            return Candidate(fam, {k.split(".", 1)[1]: v for k, v in tr.params.items() if k.startswith(fam + ".")},
                             {k.split(".", 1)[1]: v for k, v in tr.params.items() if k.startswith("pre.")},
                             {k.split(".", 1)[1]: v for k, v in tr.params.items() if k.startswith("imb.")})

        def cost_of(tr: Any, scale: float = budget.final_scale) -> float:
            """Final-stage seconds for a trial, on the final sample (scale=1.0: on the search rows)."""
            return final_cost(tr.user_attrs, len(folds), budget.refit_full, scale, budget.holdout_scale)

        resorts = last_resort(done, cost_of)
        # kept free by every earlier attempt, so that the first last resort still fits in the budget
        fallback_s = 1.5 * cost_of(resorts[0], 1.0) + 0.5
        plans: list[tuple[str, list[tuple[Any, float]]]] = []
        # members are chosen within the room the attempt below will have: an ensemble selected in more
        # room than that is skipped, and a smaller one that fits would still have beaten the single
        ens = _select_ensemble(done, data, metric, paths, budget, keep_s=fallback_s)
        if ens is not None:
            plans.append(("ensemble", ens["members"]))
            manifest["ensemble_selection"] = {k: v for k, v in ens.items() if k != "members"}
        # then every completed trial by rank: the first that fits in the time left ships; the last resorts,
        # tried whatever the clock says, are the best of the cheap pipelines, then the cheapest one
        plans += [("single", [(t_, 1.0)]) for t_ in done]
        first_resort = len(plans)
        plans += [("single", [(tr, 1.0)]) for tr in resorts]
        failures: list[str] = []
        attempts = 0
        failed: set[int] = set()  # trials whose single refit already failed: no second attempt as a resort
        for i_plan, (kind, members) in enumerate(plans):
            if attempts >= 3 and i_plan < first_resort:
                continue
            if i_plan >= first_resort and members[0][0].number in failed and i_plan < len(plans) - 1:
                continue
            cands = [(candidate(tr), w) for tr, w in members]
            label = (f"ensemble of trials {[tr.number for tr, _ in members]}" if kind == "ensemble"
                     else f"trial {members[0][0].number} ({members[0][0].params['family']})")
            floor = _floor(members, data, metric, paths)
            threshold = _threshold(members, data, metric, paths)
            small = sum(cost_of(tr, 1.0) for tr, _ in members)
            # on sampled data: the larger final sample first, keeping time to retry on the search rows (a
            # family whose cost is not linear in the rows, such as k-NN scoring the holdout, can overrun)
            tries = ([(final_data, sum(cost_of(tr) for tr, _ in members)), (data, small)]
                     if final_data is not data else [(data, small)])
            outcome = None
            for fit_data, cost in tries:
                room = budget.left() - budget.reports_s
                resort = i_plan >= first_resort and fit_data is data
                # time kept free if this attempt fails: the retry on the search rows, and the last resort
                keep = (1.5 * small if fit_data is not data else 0.0) + (0.0 if resort else fallback_s)
                if cost > 1.15 * (room - keep) and not resort:  # estimates err both ways
                    failures.append(f"{label} on {len(fit_data.y)} rows: expected {cost:.1f}s, {room - keep:.1f}s left")
                    continue
                attempts += 1
                # a refit that overruns its estimate (a loaded machine slowed HGB's refit 3x) is stopped in time
                # for its fallbacks; a last resort must ship something and gets 4x its estimate (at least 5 s),
                # since on a loaded machine a refit can take 3-4x
                limit = max(room, 4.0 * cost, 5.0) if resort else max(1.0, room - keep)
                outcome = supervise(refit_export, (fit_data, cands, X_hold, y_hold, classes, meta,
                                                   cfg.export.parity_tol, cfg.export.parity_rows, floor,
                                                   cfg.export.refit_full, min(1.5, 0.02 * cfg.budget.time_s), threshold),
                                    timeout_s=limit,
                                    memory_mb=budget.trial_memory_mb if sampled or cfg.budget.memory_mb else 0)
                if outcome.status == COMPLETE and "model" in outcome.value:
                    break
                why = (outcome.value.get("parity_error") if outcome.status == COMPLETE
                       else f"{outcome.status}: {outcome.error}")
                failures.append(f"{label} on {len(fit_data.y)} rows: {why}")
                log.error("final model (%s, %d rows) failed: %s", label, len(fit_data.y), why)
                if outcome.status == COMPLETE:  # a parity failure does not depend on the rows
                    break
            if outcome is not None and outcome.status == COMPLETE and "model" in outcome.value:
                final = outcome.value
                best = members[0][0]
                final.update(kind=kind, trial=best.number if kind == "single" else "ensemble",
                             family=best.params["family"] if kind == "single" else "ensemble",
                             params=cands[0][0].params if kind == "single" else {},
                             preprocessing=cands[0][0].summary() if kind == "single" else "",
                             cv_mean=best.value if kind == "single" else ens["oof_score"],
                             probability_floor=floor, decision_threshold=threshold,
                             members=[{"trial": tr.number, "family": tr.params["family"], "weight": round(w, 4),
                                       "cv_mean": tr.value} for tr, w in members])
                final["fit_rows"] = len(fit_data.y)
                if sampled is not None:
                    sampled.info["final_model_rows"] = len(fit_data.y) + (len(y_hold) if cfg.export.refit_full else 0)
                    if fit_data is not final_data:
                        sampled.info["final_sample_reason"] = (
                            f"the search sample: the planned {len(final_data.y)}-row refit did not fit the time left "
                            f"(planned: {sampled.info['final_sample_reason']})")
                        sampled.info["final_sample_rows"] = len(fit_data.y)
                if failures:
                    final["fallback_reason"] = ("a better-ranked model could not be shipped: " + "; ".join(failures[:5])
                                                + (f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""))
                break
            if kind == "single" and outcome is not None:  # it ran and failed: not again as a last resort
                failed.add(members[0][0].number)
        timings["final_s"] = time.time() - t
        if not final:
            status, error = "FAILED", "no candidate passed refit, export and the parity gate: " + "; ".join(failures)

    if final:
        model_bytes = final.pop("model")
        write_bytes(paths.model, model_bytes)
        final["model_bytes"] = len(model_bytes)
        import hashlib

        final["model_sha256"] = hashlib.sha256(model_bytes).hexdigest()
        from automl.monitoring.reference import write_reference_profile  # drift baseline: binned, no raw rows

        final["reference_profile_sha256"] = write_reference_profile(paths.root, X_all, schema)
        write_json(paths.parity, final["parity"])
        hp = final.pop("holdout_pred", None)
        if hp is not None:
            np.save(paths.root / "holdout_predictions.npy", hp)
            np.save(paths.root / "holdout_labels.npy", y_hold)
        from automl.reporting.explain import onnx_latency

        try:
            final["latency"] = onnx_latency(model_bytes, X_hold if len(X_hold) else X, schema.to_json(),
                                            time_limit_s=min(0.5, 0.01 * cfg.budget.time_s))
        except Exception as e:  # a measurement, never a reason to fail the run
            log.warning("latency not measured: %s", e)
    if final and cfg.data.tables:
        from automl.data.relational import PARITY_FILE, end_to_end_parity

        manifest["relational"] = end_to_end_parity(paths.root, df, paths.model, cfg.export.parity_tol)
        write_json(paths.root / PARITY_FILE, manifest["relational"])
        if not manifest["relational"]["passed"]:
            status, error = "FAILED", f"raw-table parity failed: {manifest['relational']}"
    leaderboard = _leaderboard(study, metric, final)
    write_text(paths.leaderboard, leaderboard.to_csv(index=False))
    write_text(paths.trials, study.trials_dataframe().to_csv(index=False))
    manifest.update(status=status, error=error, final={k: v for k, v in final.items() if k != "oof"})
    manifest["reproducible"] = _reproducible(cfg, n_workers, result, leaderboard)
    timings["total_s"] = time.time() - t_start
    manifest["timings"] = {k: round(v, 3) for k, v in timings.items()}
    manifest["budget"]["used_s"] = round(timings["total_s"], 2)
    manifest["budget"]["used_by_earlier_run_s"] = round(used_before, 2)
    # stated allowance over budget.time_s: interpreter exit after the last write, and estimate error
    manifest["budget"]["allowance_s"] = ALLOWANCE_S
    study.set_user_attr("run_state", "finished")
    manifest["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    from automl.reporting.model_card import render

    card = render(manifest, profile, leaderboard)
    if final and cfg.data.tables:
        from automl.data.relational import card_section

        card += card_section(paths.root, manifest.get("relational", {}))
    write_text(paths.model_card, card)
    from automl.reporting.report import write_report

    # what is left of the budget after the report, less the manifest write and interpreter exit
    timings["report_s"] = write_report(paths.root, manifest, study, budget.left() - 1.0)
    timings["total_s"] = time.time() - t_start
    manifest["timings"] = {k: round(v, 3) for k, v in timings.items()}
    manifest["budget"]["used_s"] = round(timings["total_s"], 2)
    write_json(paths.manifest, manifest)
    if status != "COMPLETE":
        log.error("run failed: %s", error)
    else:
        log.info("chosen: %s %s, CV %s=%.5g, holdout %.5g (onnx %s); wrote %s",
                 f"trial {final['trial']}" if final["kind"] == "single" else "ensemble of",
                 final["family"] if final["kind"] == "single" else [m["trial"] for m in final["members"]], metric_name, final["cv_mean"], final.get("holdout_score", np.nan),
                 f"{final['holdout_score_onnx']:.5g}" if "holdout_score_onnx" in final else "-",
                 paths.model)
    log.info("run folder: %s (%.1fs of %.0fs budget)", paths.root, timings["total_s"], cfg.budget.time_s)
    return manifest


def _reproducible(cfg: RunConfig, n_workers: int, result: Any, leaderboard: pd.DataFrame) -> dict[str, Any]:
    """Whether the same command gives the same leaderboard and predictions, and if not, why not."""
    why = []
    if n_workers > 1:
        why.append(f"{n_workers} workers interleave their trials (set search.n_workers=1)")
    if not cfg.budget.n_trials:
        why.append("the search stopped on wall-clock time (set budget.n_trials for a fixed trial count)")
    elif not result.stopped_because.startswith("trial budget"):
        why.append(f"the search stopped before its trial count ({result.stopped_because})")
    timed = leaderboard["status"].isin(["TIMEOUT", "MEMOUT", "SKIPPED", "INTERRUPTED"]).sum()
    if timed:
        why.append(f"{timed} trial(s) ended on time or memory limits, which depend on machine load")
    return {"reproducible": not why, "why_not": why}


def _floor(members: list[tuple[Any, float]], data: Any, metric: Any, paths: RunPaths) -> float:
    """A probability floor for log loss, chosen on the OOF predictions of the final combination."""
    from automl.ensemble import choose_floor

    files = [paths.oof / f"trial_{tr.number}.npy" for tr, _ in members]
    if metric.name != "log_loss" or not all(f.exists() for f in files):
        return 0.0
    oof = sum(w * np.load(f).astype(np.float64) for f, (_, w) in zip(files, members, strict=True))
    return choose_floor(oof, data.y, lambda y, p: metric(y, p, data.n_classes))


def _metric_minimum(cfg: RunConfig, metric_name: str) -> float | None:
    from automl.evaluation.metrics import CONSTRAINED

    return getattr(cfg.task, CONSTRAINED[metric_name]) if metric_name in CONSTRAINED else None


def _threshold(members: list[tuple[Any, float]], data: Any, metric: Any, paths: RunPaths) -> float | None:
    """The binary decision threshold, on the OOF predictions of the final combination (threshold metrics)."""
    from automl.evaluation.threshold import for_members

    files = [paths.oof / f"trial_{tr.number}.npy" for tr, _ in members]
    if not all(f.exists() for f in files):
        return None
    return for_members(metric, data.task, data.tune_threshold, data.y, [np.load(f) for f in files],
                       [w for _, w in members])


def _select_ensemble(done: list[Any], data: Any, metric: Any, paths: RunPaths, budget: Any,
                     keep_s: float = 0.0) -> dict[str, Any] | None:
    """Caruana selection over the OOF predictions of the best completed trials, within the refit time left
    once `keep_s` (the last resort's time) is kept free, as the final stage's attempt will count it."""
    from automl.ensemble import greedy_select
    from automl.search.budget import final_cost

    # the baseline is a constant per fold: in pooled OOF metrics (AUC) it shifts folds against each other,
    # which can look like a gain that is not there on new data
    ok = [t for t in done if t.params.get("family") != "baseline" and (paths.oof / f"trial_{t.number}.npy").exists()]
    pool = _diverse_pool(ok)
    if len(pool) < 2:
        return None
    oofs = [np.load(paths.oof / f"trial_{t.number}.npy").astype(np.float64) for t in pool]
    costs = [final_cost(t.user_attrs, len(data.folds), budget.refit_full, budget.final_scale,
                        budget.holdout_scale) for t in pool]
    from automl.evaluation.threshold import scorer

    score = scorer(metric, data.n_classes, data.task, data.tune_threshold)  # at the tuned threshold, if any
    rounds = 25
    t = time.perf_counter()
    best_single = score(data.y, oofs[0])
    # the selection's own time (one score per pool member per round; 0.9 s on 14k rows x 11 classes)
    # comes out of the refit's room, which the attempt measures after it
    select_s = (time.perf_counter() - t) * len(pool) * rounds
    # x1.15: the attempt's own tolerance (estimates err both ways)
    room = 1.15 * (budget.left() - budget.reports_s - keep_s - select_s)
    sel = greedy_select(oofs, data.y, score, metric.greater_is_better, costs=costs, max_cost=room, rounds=rounds)
    better = sel.score > best_single if metric.greater_is_better else sel.score < best_single
    log.info("ensemble selection: %d member(s), OOF %s %.5g vs best single %.5g", len(sel.members),
             metric.name, sel.score, best_single)
    if len(sel.members) < 2 or not better:
        return None
    return {"members": [(pool[i], w) for i, w in zip(sel.members, sel.weights, strict=True)],
            "oof_score": sel.score, "best_single_oof": best_single, "rounds": len(sel.history)}


def _diverse_pool(ranked: list[Any], top: int = 12, per_family: int = 2, cap: int = 24) -> list[Any]:
    """The best `top` trials plus the best `per_family` of every other family, best first. The top of a
    leaderboard is often one family in near-identical configurations (their OOF errors agree, so
    averaging them gains nothing); other families' best errors differ, which is what averaging needs."""
    from collections import Counter

    pool = ranked[:top]
    seen = Counter(t.params.get("family", "") for t in pool)
    for t in ranked[top:]:
        fam = t.params.get("family", "")
        if len(pool) < cap and seen[fam] < per_family:
            pool.append(t)
            seen[fam] += 1
    return pool


def _leaderboard(study: Any, metric: Any, final: dict[str, Any]) -> pd.DataFrame:
    from automl.evaluation.leaderboard import build_leaderboard

    return build_leaderboard(study, metric.greater_is_better, final)


def _size_samples(data: Any, sampled: Any, budget: Any, n_hold: int, cfg: RunConfig,
                  resumed: list[int] | None = None) -> tuple[Any, Any]:
    """(search data, final data) on sampled data: the search on a time-bound prefix of the memory-bound
    sample, the final refit on as much of it as its time allows (automl/search/sample_size.py).
    `resumed`: the [search, final] row counts an earlier run of this study chose, kept as they were."""
    import dataclasses

    from automl.data.scan import CLASS_FLOOR
    from automl.data.split import cv_folds
    from automl.search.sample_size import plan, subset

    lc = sampled.info.get("learning_curve") or {}
    sizes = plan(lc.get("points", []), len(data.y), n_hold, len(data.folds), budget.left() - budget.reports_s,
                 cfg.export.refit_full)
    if resumed:
        sizes.search_rows, sizes.final_rows = min(resumed), max(resumed)
        sizes.search_reason = sizes.final_reason = "kept from the earlier run of this study (resumed)"
    sampled.info.update(sizes.to_json())
    sampled.info["planned_rows"] = [sizes.search_rows, sizes.final_rows]  # before the class floors are added
    classification = data.task != "regression"

    def rows(d: Any, n: int) -> Any:
        if n >= len(d.y):
            return d
        keep = subset(d.y, n, classification, CLASS_FLOOR)
        y = d.y[keep]
        return dataclasses.replace(d, X=d.X.iloc[keep].reset_index(drop=True), y=y,
                                   folds=cv_folds(y, d.task, len(d.folds), cfg.seed))

    final = rows(data, sizes.final_rows)
    search = rows(final, sizes.search_rows)
    sampled.info["search_sample_rows"] = len(search.y)  # with the class floors
    sampled.info["final_sample_rows"] = len(final.y)
    sampled.info["final_model_rows"] = len(final.y) + (n_hold if cfg.export.refit_full else 0)  # as planned
    budget.final_scale = len(final.y) / len(search.y)
    if not cfg.budget.trial_time_s and sizes.per_trial_s:  # a family far slower than planned cannot eat the search
        from automl.search.sample_size import TRIAL_LIMIT_FACTOR

        budget.trial_time_s = max(10.0, TRIAL_LIMIT_FACTOR * sizes.per_trial_s)
        sampled.info["trial_time_limit_s"] = round(budget.trial_time_s, 1)
    # the holdout is drawn from the whole file, and may be larger than a CV fold: scored twice (Python, ONNX)
    budget.holdout_scale = max(1.0, 2.0 * n_hold / max(len(search.y) / len(search.folds), 1.0))
    log.info("sample sizes: search %d rows (%s); final model %d rows (%s); memory allowed %d",
             len(search.y), sizes.search_reason, len(final.y), sizes.final_reason, sizes.memory_rows)
    return search, final


def _data_source(cfg: RunConfig, src: Any) -> dict[str, str]:
    """Where the data came from, for the manifest: a database URL with its password masked."""
    if src is not None and src.kind == "sql":
        return {"path": src.sql.masked, "format": "sql", **({"table": src.sql.table} if src.sql.table
                                                            else {"query": src.sql.query})}
    return {"path": str(Path(cfg.data.path).resolve())}


def _trial_memory_mb(cfg: RunConfig, n_workers: int = 1, mem: Any = None) -> float:
    if cfg.budget.trial_memory_mb:
        return float(cfg.budget.trial_memory_mb)
    from automl.memory import process_mb, resolve_budget, trial_limit_mb

    # what the memory budget leaves after the driver, split over the workers' side-by-side trials
    limit, floored = trial_limit_mb(mem or resolve_budget(cfg.budget.memory_mb), process_mb(), n_workers)
    if floored:
        log.warning("budget.memory_mb leaves less than %.0f MB per trial after the driver; trials get %.0f MB",
                    limit, limit)
    return limit


# Up to this many cells (rows x columns) a trial is short and mostly per-trial overhead and
# single-threaded work: one worker per core gave 2.2x the trials of one 2-thread worker
# (medpar, 1196 rows, 40 s on 2 cores: 63 vs 28 completed).
AUTO_WORKERS_MAX_CELLS = 2_000_000


def report_allowance_s(time_s: float) -> float:
    """Time kept back for report.html (plots, hyperparameter importance) and its measurements. It drops
    its optional parts to fit what is left; measured at 0.9-1.1 s on 5,000-row data at 60 s budgets."""
    return min(3.0, 0.04 * time_s)


def resolve_workers(cfg: RunConfig, cells: int) -> int:
    """search.n_workers=0 (auto): one worker per core (at most 4) on small data, else one. A fixed
    trial count (budget.n_trials) keeps one worker, so the run is reproducible."""
    if cfg.search.n_workers:
        return cfg.search.n_workers
    if cfg.budget.n_trials or cells > AUTO_WORKERS_MAX_CELLS:
        return 1
    return max(1, min(os.cpu_count() or 1, 4))
