"""Library warnings belong in the run's log file, not between the progress lines on the console.

`capture_warnings()` turns `warnings.warn` calls into records of the `py.warnings` logger; the Hydra
job logging config (conf/config.yaml, `hydra.job_logging.loggers`) sends that logger to the run
folder's run.log only. Trials are forked from the process that called this, so the warnings they
raise take the same path.
"""
from __future__ import annotations

import logging

WARNINGS_LOGGER = "py.warnings"


def capture_warnings() -> None:
    """Route `warnings.warn` to the `py.warnings` logger (and so to whatever handlers it has)."""
    logging.captureWarnings(True)
