"""LightGBM gradient boosting (leaf-wise trees); NaN is routed natively, ONNX via onnxmltools (compat.md 2b)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from automl.estimators.spec import EstimatorSpec

# One thread: trials run in forked children, and LightGBM's OpenMP runtime (the system libgomp, loaded
# in the driver by the export stack's imports) deadlocks in a forked child that asks for 2 threads
# (measured: TIMEOUT at 10 s vs 0.04 s single-threaded on 300 rows).


def build(params: Mapping[str, Any], *, task: str, seed: int, n_jobs: int = 1) -> Any:
    from lightgbm import LGBMClassifier, LGBMRegressor

    subsample = float(params.get("subsample", 0.8))
    kw: dict[str, Any] = dict(
        n_estimators=int(params.get("n_estimators", 300)),
        learning_rate=float(params.get("learning_rate", 0.03)),
        num_leaves=int(params.get("num_leaves", 15)),
        min_child_samples=int(params.get("min_child_samples", 20)),
        subsample=subsample, subsample_freq=1 if subsample < 1.0 else 0,  # bagging needs a frequency
        colsample_bytree=float(params.get("colsample_bytree", 0.8)),
        reg_lambda=float(params.get("reg_lambda", 1.0)),
        reg_alpha=float(params.get("reg_alpha", 0.001)),
        random_state=seed, n_jobs=1,  # see the note above build()
        verbosity=-1,
        deterministic=True, force_col_wise=True,  # same model for the same seed, whatever the threads
    )
    if task == "regression":
        return LGBMRegressor(objective="regression", **kw)
    return LGBMClassifier(objective="binary" if task == "binary" else "multiclass", **kw)


def fit_early(est: Any, X: Any, y: Any, X_val: Any, y_val: Any, patience: int) -> int:
    """Fit with early stopping on (X_val, y_val); predictions and the ONNX export use the best iteration."""
    import lightgbm

    est.fit(X, y, eval_set=[(X_val, y_val)], callbacks=[lightgbm.early_stopping(patience, verbose=False)])
    return int(est.best_iteration_ or est.n_estimators)


SPEC = EstimatorSpec(key="lightgbm", name="LightGBM", build=build, handles_nan=True, onnx="registered",
                     cost=0.5, toy_params={"n_estimators": 10}, fit_early=fit_early,
                     early_refit_ratio=0.84, rounds_param="n_estimators", export_ratio=1.19)
