"""EstimatorSpec: everything the engine needs to know about one estimator family.

`build` is the only place that knows the library's class names and how search parameters
translate into constructor arguments (FLAML's config2params).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

ALL_TASKS = frozenset({"binary", "multiclass", "regression"})


@dataclass(frozen=True)
class EstimatorSpec:
    key: str
    name: str
    build: Callable[..., Any]  # build(params, *, task, seed, n_jobs) -> sklearn-compatible estimator
    tasks: frozenset[str] = ALL_TASKS
    needs_scaling: bool = False  # searched scalers only apply to these families
    handles_nan: bool = False  # may take NaN natively (imputation becomes a search choice)
    onnx: str = "native"  # native | registered (converter in automl/export/converters.py)
    cost: float = 1.0  # rough fit cost relative to a 100-tree random forest; cheap families go first
    toy_params: Mapping[str, Any] = field(default_factory=dict)  # caps for the conformance suite
    interpretable: bool = False
    space_dir: str = ""  # where <key>.yaml lives if not in search_spaces/ (plugin families)
    imbalance: bool = True  # samplers / class weights searched for it (search_spaces/imbalance.yaml)
    # whether it takes class weights (a class_weight parameter or sample_weight in fit), said by the family;
    # None: the search driver builds a bare one to see, which imports the family's library into the driver
    class_weights: bool | None = None
    # boosting: fit_early(est, X, y, X_val, y_val, patience) -> rounds kept, fitting with early stopping on the
    # validation rows (one inner split); `rounds_param` is the parameter the refit sets to those rounds
    fit_early: Callable[..., int] | None = None
    predict_grows: bool = False  # prediction cost grows with the training rows (k-NN searches them)
    rounds_param: str = ""
    # seconds per (row x round) of a refit without a validation set over those of the early-stopped fit that
    # chose its rounds (which also scores the validation rows every round): the median of
    # benchmarks/early_stop_refit.py over three public datasets, two configurations each, 12 fits per family
    early_refit_ratio: float = 1.0
    # export seconds (ONNX conversion and parity check) per fold-fit second: what a trial the search did not
    # export is priced by for the final stage (search/loop.py estimated_export_s). The family's median over
    # 2,358 exported trials of 140 run folders of 60 s runs on the ten public datasets
    # (benchmarks/export_ratios.py; the table in benchmarks/RESULTS.md, session 36)
    export_ratio: float = 0.5
    # False: a constant (the baseline), whose pipeline reads one raw column for the number of rows and encodes
    # none (preprocessing/pipeline.py build_constant_pipeline); its trials' drawn preprocessing goes unused
    uses_features: bool = True

    @property
    def tags(self) -> dict[str, Any]:
        return {"needs_scaling": self.needs_scaling, "handles_nan": self.handles_nan}
