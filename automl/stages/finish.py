"""After the search: the final stage (refit, ensemble, export, parity) and the run folder's outputs.

One function of picklable inputs, so that the run can hand it to a process that holds only what this
step needs (automl/lean_fork.py); `run()` calls it in its own process otherwise.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from automl.config.schema import RunConfig
from automl.io import RunPaths
from automl.manifest import Manifest
from automl.stages.constraints import Gate
from automl.stages.prepare import Prepared
from automl.stages.search import Searched

if TYPE_CHECKING:
    from automl.stages.final import FinalStage


def steps() -> tuple[Callable[[], None], type[FinalStage], Callable[..., Manifest]]:
    """The final stage's modules, imported once the search and the re-scoring are over (their modules are not
    needed before): the export stack's `load_converters`, `FinalStage` and `write_outputs`."""
    from automl.export.onnx import load_converters
    from automl.stages.final import FinalStage
    from automl.stages.outputs import write_outputs

    return load_converters, FinalStage, write_outputs


def preload() -> None:
    """What `finish` imports, and the export stack's converters, loaded ahead: in the lean fork, while the
    search runs."""
    steps()[0]()


def finish(config: RunConfig, prep: Prepared, searched: Searched, paths: RunPaths, meta: dict[str, str],
           gate: Gate | None, done: list[Any], rescored: dict[str, Any] | None, timings: dict[str, float],
           t_start: float, t_final: float) -> Manifest:
    """Ship the best of `done` (completed trials, best first) and write the run folder; the manifest."""
    load_converters, final_stage, write_outputs = steps()
    load_converters()  # once, so that each refit and export the final stage forks shares the export stack
    searched.budget.pending_s = 0.0
    fin = final_stage(config, prep, searched, paths, meta, gate=gate).run(done)
    if rescored is not None and fin.final:
        fin.final["rescore"] = rescored
    if done:
        timings["final_s"] = time.time() - t_final
    return write_outputs(config, prep, searched, fin, paths, t_start, timings)
