"""Export any completed trial of a run folder as its own verified graph (`automl export RUN_DIR --trial N`).

The trial is rebuilt from the run folder alone: its config (config.json), its data (checked against the
manifest's SHA-256), its study (the trial's parameters) and its out-of-fold predictions (probability floor,
decision threshold, calibration, conformal scores, as the final stage chose them for the shipped model). The
same prepare stage re-splits holdout and folds with the same seed; the final stage's ladder runs with this
one trial, so the refit, export, parity gate, card and manifest are the run's own code paths. A user can pick
another point of the front without rerunning the search.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from automl.config.compose import config_to_json, load_run_config
from automl.errors import UserError
from automl.io import RunPaths, write_json
from automl.manifest import Manifest, read_manifest
from automl.memory import trial_memory_mb
from automl.search.budget import Budget
from automl.search.loop import SearchResult
from automl.search.study import search_study, summarize
from automl.stages.final import FinalStage
from automl.stages.outputs import write_outputs
from automl.stages.prepare import graph_metadata, prepare
from automl.stages.search import Searched, report_allowance_s, size_samples
from automl.urls import is_url

log = logging.getLogger("automl")
EXPORT_TIME_S = 3600.0  # the export's own clock: one refit, export and gate, not a search


def open_run(run_dir: Path) -> tuple[RunPaths, Manifest, Any]:
    """(paths, manifest, config) of a finished run folder, or a UserError saying what is missing."""
    src = RunPaths(Path(run_dir))
    if not src.root.is_dir():
        raise UserError("RUN_DIR", f"'{run_dir}' is not a folder", "Point to a run folder that `automl` wrote.")
    if not src.manifest.is_file():
        raise UserError("RUN_DIR", f"'{run_dir}' is not an automl run folder (no manifest.json)",
                        "Point to a folder a finished run wrote, e.g. outputs/<date>/<time>_<name>.")
    return src, read_manifest(src), load_run_config(src.root)


def find_trial(study: Any, number: int) -> Any:
    """The study's trial `number`, which must have completed (a failed or pruned trial has no model to export)."""
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        last = max(trials) if trials else -1
        raise UserError("--trial", f"trial {number} is not in this run's study (trials 0..{last})",
                        "Pick a trial number from leaderboard.csv.")
    t = trials[number]
    if t.state.name != "COMPLETE":
        why = t.user_attrs.get("error") or t.user_attrs.get("status") or t.state.name
        raise UserError("--trial", f"trial {number} did not complete ({t.state.name}: {str(why)[:200]})",
                        "Pick a trial whose status is COMPLETE in leaderboard.csv.")
    return t


def check_export(run_dir: str | os.PathLike[str], number: int,
                 out_dir: str | os.PathLike[str]) -> tuple[RunPaths, Manifest, Any, Any, Any]:
    """(paths, manifest, config, study, trial) of an export that can start, or the UserError that stops it."""
    src, source_manifest, cfg = open_run(Path(run_dir))
    out = RunPaths(Path(out_dir))
    if out.root.resolve() == src.root.resolve():
        raise UserError("--out", "is the run folder itself", "Export into a folder of its own, e.g. RUN_DIR/trial_N.")
    if out.manifest.exists():
        raise UserError("--out", f"'{out_dir}' already holds a run folder (manifest.json)", "Choose an empty folder.")
    if not cfg.search.storage and not src.study.is_file():
        raise UserError("RUN_DIR", f"'{run_dir}' has no study.journal", "Point to the run folder the search wrote.")
    if not cfg.data.tables and not is_url(cfg.data.path) and source_manifest.data.get("path"):
        cfg.data.path = source_manifest.data["path"]  # resolved: a relative data.path was relative to the run's cwd
    study = search_study(cfg, src.study, "maximize" if source_manifest.greater_is_better else "minimize", cfg.seed,
                         False, cfg.search.storage, source_manifest.metric)
    return src, source_manifest, cfg, study, find_trial(study, number)


def export_trial(run_dir: str | os.PathLike[str], number: int, out_dir: str | os.PathLike[str]) -> Manifest:
    """Refit, export and parity-gate trial `number` of the run folder `run_dir` into `out_dir`, a run folder
    of its own (model.onnx, parity.json, model_card.md, manifest.json, leaderboard.csv, report.html). The
    manifest's status is FAILED (and its error says why) when the trial's graph fails the parity gate."""
    start = time.time()
    src, source_manifest, cfg, study, trial = check_export(run_dir, number, out_dir)
    out = RunPaths(Path(out_dir))
    out.root.mkdir(parents=True, exist_ok=True)
    write_json(out.config, config_to_json(cfg))
    prep = prepare(cfg, out)
    if prep.data_sha != source_manifest.data.get("sha256"):
        raise UserError("data.path", f"'{cfg.data.path}' is not the data the run searched on (SHA-256 differs)",
                        "Restore the original data file, or run a new search.")
    budget = Budget(start=start, time_s=EXPORT_TIME_S, trial_memory_mb=trial_memory_mb(
        cfg.budget.trial_memory_mb, prep.mem, 1), refit_full=cfg.export.refit_full,
        reports_s=1.5 + report_allowance_s(cfg.budget.time_s))
    data = final_data = prep.data
    if prep.sampled is not None:  # the run's own sample sizes, as its study recorded them
        data, final_data = size_samples(prep.data, prep.sampled, budget, len(prep.y_hold), cfg,
                                        study.user_attrs.get("sample_sizes"))
    counts = summarize(study)
    result = SearchResult(study, counts["completed"], counts["failed"], counts["pruned"],
                          f"exported trial {number} of {src.root}")
    searched = Searched(study=study, budget=budget, result=result, data=data, final_data=final_data,
                        resumed=False, orphans=0, used_before_s=0.0)
    log.info("exporting trial %d (%s, CV %s=%.5g) of %s", number, trial.params.get("family"), prep.metric_name,
             trial.values[0], src.root)
    # the source folder's oof/ gives the floor, threshold and calibration the final stage would choose
    fin = FinalStage(cfg, prep, searched, src, graph_metadata(cfg, prep)).run([trial])
    if fin.final:
        fin.final["exported_from"] = {"run_dir": str(src.root.resolve()), "trial": number,
                                      "params": dict(trial.params), "cv_mean": trial.values[0],
                                      "run_shipped": source_manifest.final.get("trial")}
    return write_outputs(cfg, prep, searched, fin, out, start, dict(prep.timings))
