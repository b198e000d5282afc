"""automl: a declarative, config-driven AutoML engine.

`run(config)` is the one public entry point; the CLI (`automl`) composes a Hydra config,
validates it and calls it. Heavy libraries are imported lazily so `import automl` stays fast.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from automl.version import __version__

if TYPE_CHECKING:
    from automl.config.schema import RunConfig
    from automl.stages.outputs import Manifest


def run(config: RunConfig, output_dir: str) -> Manifest:
    """Run one AutoML task end to end; return the manifest written to `output_dir` (manifest.json)."""
    # imported when called: `import automl` stays light (the engine pulls in pandas and the search)
    from automl.run import run as run_pipeline

    return run_pipeline(config, output_dir)


__all__ = ["__version__", "run"]
