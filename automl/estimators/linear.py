"""Linear models: logistic regression (classification), ridge / elastic net (regression)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from automl.estimators.spec import EstimatorSpec


def build(params: Mapping[str, Any], *, task: str, seed: int, n_jobs: int = 1) -> Any:
    if task == "regression":
        from sklearn.linear_model import ElasticNet, Ridge

        alpha = float(params.get("alpha", 1.0))
        if params.get("penalty", "ridge") == "ridge":
            return Ridge(alpha=alpha, max_iter=params.get("max_iter"), random_state=seed)
        return ElasticNet(alpha=alpha, l1_ratio=float(params.get("l1_ratio", 0.5)),
                          max_iter=int(params.get("max_iter", 5000)), random_state=seed)
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=float(params.get("C", 1.0)), max_iter=int(params.get("max_iter", 2000)),
                              random_state=seed)


# toy_params: in the conformance suite, C=1000 on unscaled synthesised features ran all 2000 rounds
SPEC = EstimatorSpec(key="linear", name="Linear (logistic / ridge / elastic net)", build=build,
                     needs_scaling=True, cost=0.05, interpretable=True, toy_params={"max_iter": 200}, export_ratio=0.46)
