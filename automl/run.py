"""One run: prepare -> search -> final -> outputs. Typed in, files out.

Each stage is a module of automl/stages/ with a typed result: `Prepared` (the data, split and
profiled), `Searched` (the study and its budget), `FinalResult` (what the ladder shipped) and
`Manifest` (what the run folder says of it all).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from automl.config.compose import config_to_json
from automl.config.schema import RunConfig
from automl.io import RunPaths, write_json
from automl.manifest import Manifest
from automl.reporting.progress import Progress, log_trial
from automl.stages.constraints import gate_for
from automl.stages.prepare import graph_metadata, prepare
from automl.stages.rescore import rescore
from automl.stages.search import search
from automl.tracking.mlflow_tracking import track

log = logging.getLogger("automl")
PROCESS_START = time.time()  # the budget counts from process start (cli may pass an earlier start)


def run(config: RunConfig, output_dir: str, start: float | None = None) -> Manifest:
    """Run one AutoML task end to end into `output_dir`; return the manifest it wrote."""
    t_start = start or PROCESS_START
    paths = RunPaths(Path(output_dir))
    paths.root.mkdir(parents=True, exist_ok=True)
    write_json(paths.config, config_to_json(config))  # the resolved config, whichever door it came through

    prep = prepare(config, paths)
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
    # imported once the search and the re-scoring are over (their modules are not needed before); the export
    # stack too, once in the driver, so that each refit and export the final stage forks shares it
    from automl.export.onnx import load_converters
    from automl.stages.final import FinalStage
    from automl.stages.outputs import write_outputs

    load_converters()
    searched.budget.pending_s = 0.0

    fin = FinalStage(config, prep, searched, paths, meta, gate=gate).run(done)
    if rescored is not None and fin.final:
        fin.final["rescore"] = rescored
    if done:
        timings["final_s"] = time.time() - t

    manifest = write_outputs(config, prep, searched, fin, paths, t_start, timings)
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
