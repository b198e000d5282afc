"""automl: a declarative, config-driven AutoML engine.

`run(config)` is the one public entry point; the CLI (`automl`) composes a Hydra config,
validates it and calls it. Heavy libraries are imported lazily so `import automl` stays fast.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from automl.config.schema import RunConfig


def run(config: RunConfig, output_dir: str) -> dict[str, Any]:
    """Run one AutoML task end to end; return the manifest written to `output_dir`."""
    from automl.run import run as _run

    return _run(config, output_dir)


__all__ = ["__version__", "run"]
