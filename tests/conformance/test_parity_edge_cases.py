"""ONNX parity on small, readable cases the sampled conformance configurations hit by chance.

Each builds the engine's own pipeline (build_pipeline -> export_onnx -> check_parity, as a trial does),
with parameters inside the shipped search spaces, so a failure here is a trial the search loses.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl.data.roles import infer_schema, to_model_frame
from automl.estimators import REGISTRY
from automl.export.onnx import check_parity, export_onnx
from automl.preprocessing.pipeline import build_pipeline
from automl.search.space import load_space

pytestmark = pytest.mark.onnx


def _in_space(key: str, params: dict) -> None:
    space = {p.name: p for p in load_space(key)}
    for name, value in params.items():
        p = space[name]
        assert float(p.low) <= value <= float(p.high), (name, value)


def test_xgboost_binary_whose_trees_are_single_leaves_keeps_parity():
    """60 rows, subsample 0.5 and min_child_weight 8 (the top of the searched range): no split is possible,
    so every tree is one leaf and the first leaf is 0 (base_score starts at the class prior).

    onnxmltools 1.16 XGBClassifierConverter.convert then writes base_score (a probability) into
    base_values instead of its logit, and every probability is off by the same amount."""
    params = {"n_estimators": 10, "min_child_weight": 8.0, "subsample": 0.5, "max_depth": 4}
    _in_space("xgboost", {k: v for k, v in params.items() if k != "n_estimators"})
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    y = (rng.random(60) < 0.3).astype(int)
    schema = infer_schema(df.assign(y=y), "y", [], [])
    X = to_model_frame(df, schema)
    est = REGISTRY.get("xgboost").build(params, task="binary", seed=0)
    pipe = build_pipeline(est, {"native_nan": True}, schema, [], "binary").fit(X, y)
    assert est.get_booster().get_dump()[0].strip() in ("0:leaf=0", "0:leaf=-0")  # the case under test
    model = export_onnx(pipe, schema, "binary", [0, 1], {})
    report = check_parity(model, pipe, X, schema, "binary", 1e-5, seed=0)
    assert report["passed"]


def test_linear_regression_default_keeps_parity_when_the_target_crosses_zero():
    """The linear family's default pipeline (ridge after standard scaling) on y = X.w + noise, |w| ~ 100.

    Python and onnxruntime both compute in float32 and differ by about one float32 step of the
    intermediate sums (~1e-5 at a few hundred); for rows predicted near 0 the gate divides that by
    max(|y|, 1) = 1, so a correct graph fails the 1e-5 regression tolerance."""
    rng = np.random.default_rng(9)
    X = rng.normal(size=(120, 4))
    y = X @ np.array([150.0, -80.0, 120.0, 60.0]) + rng.normal(0, 5, 120)
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    schema = infer_schema(df.assign(y=y), "y", [], [])
    Xm = to_model_frame(df, schema)
    est = REGISTRY.get("linear").build({"penalty": "ridge", "alpha": 1.0}, task="regression", seed=0)
    pipe = build_pipeline(est, {"scaler": "standard", "num_impute": "median"}, schema, [], "regression")
    pipe.fit(Xm, y)
    model = export_onnx(pipe, schema, "regression", None, {})
    report = check_parity(model, pipe, Xm, schema, "regression", 1e-5, seed=0)
    assert report["passed"]
