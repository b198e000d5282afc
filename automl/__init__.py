"""automl: a declarative, config-driven AutoML engine.

`fit(data, target, overrides=...)` runs a search as the `automl` command does and returns a `Run`;
`load(run_dir)` opens a run folder as the same `Run` (automl/api.py). `run(config, output_dir)` is the
engine's typed entry point beneath both. Everything heavy is imported on first use, so `import automl`
stays fast.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from automl.version import __version__

if TYPE_CHECKING:
    from automl.api import Run, RunFailed, fit, load
    from automl.config.schema import RunConfig
    from automl.stages.outputs import Manifest

_API = ("fit", "load", "Run", "RunFailed")


def run(config: RunConfig, output_dir: str) -> Manifest:
    """Run one AutoML task end to end; return the manifest written to `output_dir` (manifest.json).
    The time budget counts from this call."""
    started = time.time()
    # imported when called: `import automl` stays light (the engine pulls in pandas and the search)
    from automl.run import run as run_pipeline

    return run_pipeline(config, output_dir, start=started)


def __getattr__(name: str) -> Any:
    """automl.fit, automl.load, automl.Run: the Python API, imported on first use (it loads the engine)."""
    if name in _API:
        from automl.api import Run, RunFailed, fit, load

        return {"fit": fit, "load": load, "Run": Run, "RunFailed": RunFailed}[name]
    raise AttributeError(f"module 'automl' has no attribute {name!r}")


__all__ = ["Run", "RunFailed", "__version__", "fit", "load", "run"]
