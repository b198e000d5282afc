"""Column roles, task inference, the model frame and the data profile."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl.data.profile import build_profile
from automl.data.roles import infer_schema, infer_task, to_model_frame
from automl.errors import UserError


def _frame(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "customer_id": np.arange(n),
        "age": rng.integers(18, 80, n).astype(float),
        "colour": rng.choice(["red", "green", "blue"], n),
        "note": [f"this is free text number {i} with words" for i in range(n)],
        "signup": pd.date_range("2024-01-01", periods=n).astype(str),
        "const": 1,
        "empty": np.nan,
        "y": rng.integers(0, 2, n),
    })


def test_roles():
    schema = infer_schema(_frame(), "y", [], [])
    role = {c.name: c.role for c in schema.columns}
    assert role == {"customer_id": "id", "age": "numeric", "colour": "categorical", "note": "text",
                    "signup": "datetime", "const": "constant", "empty": "constant"}
    assert [c.name for c in schema.features] == ["age", "colour", "note"]


def test_declared_id_and_drop_columns():
    schema = infer_schema(_frame(), "y", ["age"], ["colour"])
    role = {c.name: c.role for c in schema.columns}
    assert role["age"] == "id" and role["colour"] != "categorical"


def test_no_features_is_a_user_error():
    df = pd.DataFrame({"id": range(30), "y": [0, 1] * 15})
    with pytest.raises(UserError, match="no usable feature"):
        infer_schema(df, "y", [], [])


@pytest.mark.parametrize("values,task", [
    (["a", "b"] * 20, "binary"), (["a", "b", "c"] * 20, "multiclass"), ([0, 1] * 20, "binary"),
    (list(range(5)) * 20, "multiclass"), (list(np.linspace(0, 1, 100)), "regression"), ([3] * 10, "constant"),
])
def test_infer_task(values, task):
    assert infer_task(pd.Series(values)) == task


def test_model_frame_follows_the_onnx_contract():
    df = pd.DataFrame({"x": [1.0, np.inf, None], "c": ["a", None, "b"], "y": [0, 1, 0]})
    schema = infer_schema(df, "y", [], [])
    X = to_model_frame(df, schema)
    assert X["x"].dtype == np.float32 and np.isnan(X["x"].iloc[1]) and np.isnan(X["x"].iloc[2])
    assert list(X["c"]) == ["a", "", "b"]


def test_profile_warnings_and_leakage():
    df = _frame(200)
    df["leak"] = df["y"] * 10 + 1
    df.loc[:150, "age"] = np.nan
    schema = infer_schema(df, "y", [], [])
    p = build_profile(df, "y", "binary", schema, seed=0)
    text = " ".join(p["warnings"])
    assert "'customer_id' looks like an ID" in text
    assert "'const' is constant" in text
    assert "'age' is 76% missing" in text
    assert "'leak' alone predicts the target" in text
    cols = {c["name"]: c for c in p["columns"]}
    assert cols["leak"]["leakage_suspect"] is True
    assert "outlier_share" in cols["age"] and "skew" in cols["age"]
    assert p["target"]["imbalance_ratio"] >= 1.0 and p["duplicate_rows"] == 0
