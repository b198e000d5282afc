"""One run: prepare -> search -> final -> outputs. Typed in, files out.

Each stage is a module of automl/stages/ with a typed result: `Prepared` (the data, split and
profiled), `Searched` (the study and its budget), `FinalResult` (what the ladder shipped) and
`Manifest` (what the run folder says of it all).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from automl.config.compose import config_to_json
from automl.config.schema import RunConfig
from automl.io import RunPaths, write_json
from automl.lean_fork import LeanFork, NotHandedOver
from automl.manifest import Manifest
from automl.memory import process_mb
from automl.reporting.progress import Progress, log_trial
from automl.stages.constraints import gate_for
from automl.stages.finish import finish
from automl.stages.prepare import Prepared, graph_metadata, prepare
from automl.stages.rescore import rescore
from automl.stages.search import search
from automl.tracking.mlflow_tracking import track

log = logging.getLogger("automl")
PROCESS_START = time.time()  # the budget counts from process start (cli may pass an earlier start)
# the final stage moves to the lean fork only when what it is handed is small next to the libraries it spares
# the driver (~55 MB on small data: featuretools, the boosting libraries, Optuna, the export stack); larger
# data would be held twice, once pickled
HAND_OVER_MAX_MB = 32.0


def run(config: RunConfig, output_dir: str, start: float | None = None, finisher: LeanFork | None = None
        ) -> Manifest:
    """Run one AutoML task end to end into `output_dir`; return the manifest it wrote. With `finisher`
    (the command line's), the final stage and the outputs run in that lean process when `hand_over` says so."""
    t_start = start or PROCESS_START
    paths = RunPaths(Path(output_dir))
    paths.root.mkdir(parents=True, exist_ok=True)
    write_json(paths.config, config_to_json(config))  # the resolved config, whichever door it came through

    prep = prepare(config, paths)
    if finisher is not None and not hand_over(config, prep):
        finisher.close()  # at once: it would idle through the search holding its libraries
        finisher = None
    timings = dict(prep.timings)
    searched = search(config, prep, paths, t_start, Progress, log_trial)
    timings.update(searched.timings)

    t = time.time()
    meta = graph_metadata(config, prep)
    done = searched.completed(prep.data.metric.greater_is_better)
    t_rescore = time.time()
    done, rescored = rescore(done, searched.data, searched.budget, searched.budget.rescore_top, paths.oof)
    if rescored is not None:
        timings["rescore_s"] = time.time() - t_rescore
    done = searched.front_first(done)  # search.objectives with a cost: the study's front first
    gate = gate_for(config.constraints, prep.X_hold, prep.data.X, prep.schema.to_json(),
                    prep.data.metric.greater_is_better)
    args = (config, prep, searched, paths, meta, gate, done, rescored, timings, t_start, t)
    manifest = finish_lean(finisher, args) if finisher is not None and finisher.alive() else None
    if manifest is None:
        manifest = finish(*args)
    final = manifest.final
    if manifest.status != "COMPLETE":
        log.error("run failed: %s", manifest.error)
    else:
        single = final["kind"] == "single"
        log.info("chosen: %s %s, CV %s=%.5g, holdout %.5g (onnx %s); wrote %s",
                 f"trial {final['trial']}" if single else f"{'stacked ' if final.get('stacker') else ''}ensemble of",
                 final["family"] if single else [m["trial"] for m in final["members"]], prep.metric_name,
                 final["cv_mean"], final.get("holdout_score", np.nan),
                 f"{final['holdout_score_onnx']:.5g}" if "holdout_score_onnx" in final else "-", paths.model)
    log.info("run folder: %s (%.1fs of %.0fs budget)", paths.root, manifest.timings["total_s"],
             config.budget.time_s)
    track(config, paths)  # after the folder is complete: a tracking failure changes nothing in it
    return manifest


def finish_lean(finisher: LeanFork, args: tuple[Any, ...]) -> Manifest | None:
    """`finish(*args)` in the lean fork; None (the fork ended) if its inputs do not pickle."""
    try:
        packed = finisher.pack(finish, *args)
    except NotHandedOver as e:
        log.info("final stage and outputs: in the driver (its inputs do not pickle: %s)", e)
        return None
    log.info("final stage and outputs: in the process forked lean at start (pid %d); the driver holds %.0f MB",
             finisher.pid, process_mb())
    result: Manifest = finisher.call(packed)
    return result


def hand_over(config: RunConfig, prep: Prepared) -> bool:
    """Whether the final stage runs in the lean fork: not under budget.memory_mb (whose accounting is the
    driver's and its children's), not on scanned and sampled data, not on data worth more than
    HAND_OVER_MAX_MB in memory."""
    if config.budget.memory_mb > 0 or prep.sampled is not None:
        return False
    frames = [prep.X_all, prep.X_hold] + ([prep.raw] if prep.raw is not None else [])
    return sum(float(f.memory_usage(index=False).sum()) for f in frames) / 2**20 <= HAND_OVER_MAX_MB
