"""Test-only estimator families that fail on purpose, for the reliability tests.

Loaded by the engine through its plugin hook, never by the default test process:

    PYTHONPATH=<repo root> AUTOML_PLUGINS=tests.plugins.fault_families automl ... \
        'estimators.include=[baseline,linear,fault_raise]'

Importing this module registers (REGISTRY.add) these families; each one's search space is
`tests/plugins/<key>.yaml` (empty spaces, so the default configuration is the only one):

- `fault_none`:     a working logistic regression / ridge (the control: must not fail, exports to ONNX)
- `fault_warn`:     `fit` raises a UserWarning, then fits as `fault_none` does (warnings reach run.log only)
- `fault_raise`:    `fit` raises ValueError
- `fault_segfault`: `fit` kills its own process with SIGSEGV
- `fault_hang`:     `fit` hangs in native code (libc `sleep(10000)`, the GIL released, no Python frames run)
- `fault_memory`:   `fit` allocates 100 MB numpy arrays in a loop, without bound as far as the engine can tell

The estimators are ordinary scikit-learn estimators (module-level classes, `get_params`/`clone` work),
for binary, multiclass and regression tasks: the fault fires at the start of `fit`, otherwise they are
a LogisticRegression / Ridge (so `fault_none` converts with skl2onnx's linear converters).

Two environment variables help the tests observe the faults (both optional):

- `AUTOML_FAULT_MARKER_DIR`: before a fault fires, `fit` writes `<dir>/<fault>.<pid>` holding the pid
  of the process that fits, so a test can wait until a trial is inside the fault (and find it later).
- `AUTOML_FAULT_MEMORY_CAP_MB` (default 8192): a host-protection ceiling for `fault_memory`. The engine
  is expected to kill the trial long before (MEMOUT). If it does not, the estimator stops allocating at
  the ceiling and holds the memory while it sleeps, so a missing memory limit shows up as a TIMEOUT
  instead of taking down a shared machine.
"""
from __future__ import annotations

import ctypes
import os
import signal
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin  # noqa: F401  (the sklearn API used)
from sklearn.linear_model import LogisticRegression, Ridge

from automl.estimators import REGISTRY
from automl.estimators.spec import EstimatorSpec

SPACE_DIR = str(Path(__file__).resolve().parent)
MARKER_ENV = "AUTOML_FAULT_MARKER_DIR"
MEMORY_CAP_ENV = "AUTOML_FAULT_MEMORY_CAP_MB"
FAULTS = ("none", "warn", "raise", "segfault", "hang", "memory")
CHUNK_MB = 100


def _mark(fault: str) -> None:
    where = os.environ.get(MARKER_ENV)
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        (Path(where) / f"{fault}.{os.getpid()}").write_text(str(os.getpid()))


def inject(fault: str) -> None:
    """Fire the fault (called at the start of fit)."""
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; use one of {FAULTS}")
    if fault == "none":
        return
    if fault == "warn":
        warnings.warn("fault_warn: injected warning in fit", UserWarning, stacklevel=2)
        return
    _mark(fault)
    if fault == "raise":
        raise ValueError("fault_raise: injected failure in fit")
    if fault == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(5)  # the signal is delivered before this returns; never reached
        raise RuntimeError("SIGSEGV was not delivered")
    if fault == "hang":
        ctypes.CDLL(None).sleep(10_000)  # native code: no Python bytecode runs, no signal handler in Python
        raise RuntimeError("woke up from a 10000 s sleep")
    if fault == "memory":
        cap_mb = float(os.environ.get(MEMORY_CAP_ENV, "8192"))
        hog: list[np.ndarray] = []
        while len(hog) * CHUNK_MB < cap_mb:
            hog.append(np.ones(CHUNK_MB * 2**20 // 8))  # np.ones touches every page: resident, not just reserved
            time.sleep(0.01)
        while True:  # the ceiling: hold the memory, the engine's time limit must end this
            time.sleep(1)


class FaultClassifier(LogisticRegression):
    """A LogisticRegression whose fit first fires `fault` (binary and multiclass)."""

    def __init__(self, fault: str = "none", C: float = 1.0, max_iter: int = 1000, random_state: Any = None) -> None:
        self.fault = fault
        super().__init__(C=C, max_iter=max_iter, random_state=random_state)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> FaultClassifier:
        inject(self.fault)
        return super().fit(X, y, sample_weight=sample_weight)


class FaultRegressor(Ridge):
    """A Ridge whose fit first fires `fault`."""

    def __init__(self, fault: str = "none", alpha: float = 1.0, random_state: Any = None) -> None:
        self.fault = fault
        super().__init__(alpha=alpha, random_state=random_state)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> FaultRegressor:
        inject(self.fault)
        return super().fit(X, y, sample_weight=sample_weight)


def _builder(fault: str) -> Any:
    def build(params: Mapping[str, Any], *, task: str, seed: int, n_jobs: int = 1) -> Any:
        if task == "regression":
            return FaultRegressor(fault=fault, random_state=seed)
        return FaultClassifier(fault=fault, random_state=seed)

    build.__name__ = f"build_{fault}"
    return build


def _register_converters() -> None:
    """skl2onnx picks converters by exact type: point the subclasses at the linear converters."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )
    from skl2onnx.operator_converters.linear_classifier import convert_sklearn_linear_classifier
    from skl2onnx.operator_converters.linear_regressor import convert_sklearn_linear_regressor

    update_registered_converter(FaultClassifier, "AutomlTestFaultClassifier", calculate_linear_classifier_output_shapes,
                                convert_sklearn_linear_classifier,
                                options={"zipmap": [True, False, "columns"], "nocl": [True, False],
                                         "output_class_labels": [False, True], "raw_scores": [True, False]})
    update_registered_converter(FaultRegressor, "AutomlTestFaultRegressor", calculate_linear_regressor_output_shapes,
                                convert_sklearn_linear_regressor)


SPECS = [
    EstimatorSpec(key=f"fault_{fault}", name=f"Test fault: {fault}", build=_builder(fault), needs_scaling=True,
                  onnx="registered", cost=0.5, space_dir=SPACE_DIR)
    for fault in FAULTS
]

_register_converters()
for _spec in SPECS:
    if _spec.key not in REGISTRY:  # importing twice (e.g. under two module names) must not fail
        REGISTRY.add(_spec)
