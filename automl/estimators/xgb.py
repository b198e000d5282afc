"""XGBoost gradient boosting (hist trees); NaN is routed natively, ONNX via onnxmltools (compat.md 2b, P18).

Named xgb.py so that the module never shadows the `xgboost` library.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from automl.estimators.spec import EstimatorSpec

# One thread: trials run in forked children, and XGBoost's OpenMP runtime (the system libgomp, loaded
# in the driver by the export stack's imports) deadlocks in a forked child that asks for 2 threads
# (measured: TIMEOUT at 10 s vs 0.04 s single-threaded on 300 rows).


def build(params: Mapping[str, Any], *, task: str, seed: int, n_jobs: int = 1) -> Any:
    from xgboost import XGBClassifier, XGBRegressor

    kw = dict(
        n_estimators=int(params.get("n_estimators", 300)),
        learning_rate=float(params.get("learning_rate", 0.03)),
        max_depth=int(params.get("max_depth", 4)),
        min_child_weight=float(params.get("min_child_weight", 1.0)),
        subsample=float(params.get("subsample", 0.8)),
        colsample_bytree=float(params.get("colsample_bytree", 0.8)),
        reg_lambda=float(params.get("reg_lambda", 1.0)),
        reg_alpha=float(params.get("reg_alpha", 0.001)),
        tree_method="hist", random_state=seed, n_jobs=1,  # see the note above build()
        verbosity=0,
    )
    if task == "regression":
        return XGBRegressor(objective="reg:squarederror", **kw)
    return XGBClassifier(objective="binary:logistic" if task == "binary" else "multi:softprob", **kw)


def fit_early(est: Any, X: Any, y: Any, X_val: Any, y_val: Any, patience: int) -> int:
    """Fit with early stopping on (X_val, y_val); predictions and the ONNX export use the best iteration."""
    est.set_params(early_stopping_rounds=patience)
    est.fit(X, y, eval_set=[(X_val, y_val)], verbose=False)
    return int(est.best_iteration) + 1


SPEC = EstimatorSpec(key="xgboost", name="XGBoost", build=build, handles_nan=True, onnx="registered",
                     cost=0.6, toy_params={"n_estimators": 10}, fit_early=fit_early,
                     early_refit_ratio=0.74, rounds_param="n_estimators", export_ratio=1.0)
