"""A Hydra callback: after a --multirun sweep, write summary.csv at the sweep root (one row per job)
and the sweep's report.html."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from automl.config.schema import TrackingConfig
from automl.io import SweepPaths, write_text
from automl.reporting.sweep_report import write_sweep_report
from automl.reporting.sweep_rows import collect, summary
from automl.tracking.mlflow_tracking import close_sweep, open_sweep

log = logging.getLogger("automl")


def tracking(config: Any) -> TrackingConfig | None:
    """The sweep's tracking settings when it tracks to MLflow (tracking=mlflow), else None."""
    node = getattr(config, "tracking", None)  # a config composed without the tracking group has none
    if node is None or getattr(node, "backend", "none") != "mlflow":
        return None
    return TrackingConfig(**OmegaConf.to_container(node, resolve=True))  # type: ignore[arg-type]


class SweepSummary(Callback):
    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        t = tracking(config)
        if t is not None:  # the parent run before any job, so jobs running at once find the same one
            open_sweep(t, Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep = SweepPaths(Path(config.hydra.sweep.dir))
        if not sweep.jobs():
            return
        write_text(sweep.summary, summary(collect(sweep.root)).to_csv(index=False))
        log.info("sweep summary: %s", sweep.summary)
        if write_sweep_report(sweep.root):
            log.info("sweep report: %s (automl compare %s prints the same tables)", sweep.report, sweep.root)
        t = tracking(config)
        if t is not None:
            close_sweep(t, sweep.root, [sweep.summary, sweep.report])
