"""A Hydra callback: after a --multirun sweep, write summary.csv at the sweep root (one row per job)
and the sweep's report.html."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from automl.io import SweepPaths, write_text
from automl.reporting.sweep_report import write_sweep_report
from automl.reporting.sweep_rows import collect, summary

log = logging.getLogger("automl")


class SweepSummary(Callback):
    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep = SweepPaths(Path(config.hydra.sweep.dir))
        if not sweep.jobs():
            return
        write_text(sweep.summary, summary(collect(sweep.root)).to_csv(index=False))
        log.info("sweep summary: %s", sweep.summary)
        if write_sweep_report(sweep.root):
            log.info("sweep report: %s (automl compare %s prints the same tables)", sweep.report, sweep.root)
