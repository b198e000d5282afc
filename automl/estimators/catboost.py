"""CatBoost on numeric inputs (categoricals are encoded in the sklearn part: compat.md P4)."""
from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from automl.estimators.spec import EstimatorSpec

# catboost's __init__ tries its Jupyter widget, which imports IPython wherever IPython is installed (~480
# modules: 21 MB and 0.2 s in every process that loads CatBoost, the driver and each forked trial), then
# fails without ipywidgets. The engine draws no plots: outside an IPython session the widget is skipped
# (None in sys.modules makes catboost's guarded import fail at once). Set here, where the registry loads
# the family, so it holds before any import of catboost: fitting, converter registration, unpickling.
if "IPython" not in sys.modules:
    sys.modules.setdefault("catboost.widget", None)  # type: ignore[arg-type]


def build(params: Mapping[str, Any], *, task: str, seed: int, n_jobs: int = 1) -> Any:
    from catboost import CatBoostClassifier, CatBoostRegressor

    kw = dict(
        iterations=int(params.get("iterations", 500)),
        learning_rate=float(params.get("learning_rate", 0.08)),
        depth=int(params.get("depth", 6)),
        l2_leaf_reg=float(params.get("l2_leaf_reg", 3.0)),
        random_strength=float(params.get("random_strength", 1.0)),
        random_seed=seed, thread_count=n_jobs, verbose=False, allow_writing_files=False,
    )
    if task == "regression":
        return CatBoostRegressor(loss_function="RMSE", **kw)
    return CatBoostClassifier(loss_function="Logloss" if task == "binary" else "MultiClass", **kw)


def fit_early(est: Any, X: Any, y: Any, X_val: Any, y_val: Any, patience: int) -> int:
    """Fit with early stopping on (X_val, y_val), keeping the trees up to the best iteration only."""
    est.fit(X, y, eval_set=(X_val, y_val), early_stopping_rounds=patience, use_best_model=True, verbose=False)
    return int(est.tree_count_)


SPEC = EstimatorSpec(key="catboost", name="CatBoost", build=build, handles_nan=True, onnx="registered",
                     cost=1.5, toy_params={"iterations": 10}, fit_early=fit_early,
                     early_refit_ratio=0.8, rounds_param="iterations", class_weights=True, export_ratio=0.15)
