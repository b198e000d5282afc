"""Column roles, task inference and the model frame (the ONNX input contract on the Python side)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl.data.roles import infer_schema, infer_task, to_model_frame
from automl.errors import UserError


def _mixed(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "customer_id": np.arange(n),  # integer, unique, named like an id
        "ticket": [f"T-{i:05d}-x" for i in range(n)],  # string, unique per row
        "age": rng.integers(18, 80, n).astype(float),
        "visits": rng.integers(0, 5, n),  # small integers stay numeric
        "colour": rng.choice(["red", "green", "blue"], n),
        "note": [f"this is free text number {i} with words" for i in range(n)],
        "signup": pd.date_range("2024-01-01", periods=n).astype(str),  # dates as text
        "stamp": pd.date_range("2024-01-01", periods=n, freq="h"),  # datetime64
        "const": 1,
        "empty": np.nan,
        "y": rng.integers(0, 2, n),
    })


def test_each_role_is_inferred():
    schema = infer_schema(_mixed(), "y", [], [])
    role = {c.name: c.role for c in schema.columns}
    assert role == {
        "customer_id": "id", "ticket": "id", "age": "numeric", "visits": "numeric", "colour": "categorical",
        "note": "text", "signup": "datetime", "stamp": "datetime", "const": "constant", "empty": "constant",
    }
    assert "y" not in role  # the target is never a feature
    # numeric, categorical, text and datetime columns become features (graph inputs), in file order
    assert [c.name for c in schema.features] == ["age", "visits", "colour", "note", "signup", "stamp"]
    assert {c.name for c in schema.excluded} == {"customer_id", "ticket", "const", "empty"}
    reasons = {c.name: c.reason for c in schema.columns}
    assert reasons["empty"] == "all values missing" and reasons["const"] == "a single value"


def test_unique_integers_are_not_an_id_when_shuffled_and_not_named_like_one():
    n = 50
    df = pd.DataFrame({"score": np.random.default_rng(1).permutation(n), "y": [0, 1] * (n // 2)})
    assert infer_schema(df, "y", [], []).columns[0].role == "numeric"


def test_onnx_kind_and_json_schema():
    schema = infer_schema(_mixed(), "y", [], [])
    assert schema.to_json() == [
        {"name": "age", "kind": "numeric", "dtype": "float32"},
        {"name": "visits", "kind": "numeric", "dtype": "float32"},
        {"name": "colour", "kind": "categorical", "dtype": "string"},
        {"name": "note", "kind": "text", "dtype": "string"},
        {"name": "signup", "kind": "datetime", "dtype": "float64"},  # epoch seconds, UTC
        {"name": "stamp", "kind": "datetime", "dtype": "float64"},
    ]


def test_declared_id_and_drop_columns_are_excluded():
    schema = infer_schema(_mixed(), "y", ["age"], ["colour"])
    by_name = {c.name: c for c in schema.columns}
    assert by_name["age"].role == "id" and "data.id_columns" in by_name["age"].reason
    assert not by_name["colour"].is_feature and "data.drop_columns" in by_name["colour"].reason
    assert [c.name for c in schema.features] == ["visits", "note", "signup", "stamp"]


def test_no_usable_feature_is_a_user_error_naming_the_excluded_columns():
    df = pd.DataFrame({"id": range(30), "k": 7, "y": [0, 1] * 15})
    with pytest.raises(UserError, match="no usable feature") as e:
        infer_schema(df, "y", [], [])
    assert "id=id" in str(e.value) and "k=constant" in str(e.value)


@pytest.mark.parametrize("values,task", [
    (["a", "b"] * 20, "binary"),
    (["a", "b", "c"] * 20, "multiclass"),
    ([0, 1] * 20, "binary"),
    ([True, False] * 20, "binary"),
    ([0.5, 1.5] * 20, "binary"),  # two values: binary whatever the dtype
    (list(range(5)) * 20, "multiclass"),  # few integer codes, enough rows per code
    ([1.0, 2.0, 3.0] * 20, "multiclass"),  # integral floats count as integer codes
    (list(range(25)) * 10, "regression"),  # more than 20 distinct integers
    (list(range(8)) * 2, "regression"),  # too few rows per code to be classes
    (list(np.linspace(0, 1, 100)), "regression"),
    ([3] * 10, "constant"),
    ([3, None, 3, None], "constant"),  # missing values do not count as a class
])
def test_infer_task(values, task):
    assert infer_task(pd.Series(values)) == task


def test_model_frame_follows_the_onnx_contract():
    df = pd.DataFrame({
        "x": [1.5, np.inf, None, -np.inf],
        "n": [1, 2, 3, 4],
        "c": ["a", None, "b", np.nan],
        "f": [1.0, np.nan, 2.5, 1.0],
        "y": [0, 1, 0, 1],
    })
    schema = infer_schema(df.assign(f=df["f"].astype(object).map(lambda v: v if pd.isna(v) else f"{v}")), "y", [], [])
    schema_roles = {c.name: c.role for c in schema.columns}
    assert schema_roles == {"x": "numeric", "n": "numeric", "c": "categorical", "f": "categorical"}
    X = to_model_frame(df, schema)
    assert list(X.columns) == ["x", "n", "c", "f"]
    assert X["x"].dtype == np.float32 and X["n"].dtype == np.float32
    assert X["x"].iloc[0] == np.float32(1.5) and np.isnan(X["x"].iloc[1:]).all()  # +/-inf travel as missing
    assert list(X["c"]) == ["a", "", "b", ""]  # "" is the one missing sentinel for strings
    # a float column treated as categorical keeps repr(float): one spelling for every reader
    assert list(X["f"]) == ["1.0", "", "2.5", "1.0"]


def test_the_tiny_frames_have_the_roles_and_tasks_they_are_built_for(binary_frame, multiclass_frame,
                                                                      regression_frame):
    for df, task in ((binary_frame, "binary"), (multiclass_frame, "multiclass"), (regression_frame, "regression")):
        assert infer_task(df["y"]) == task
        schema = infer_schema(df, "y", [], [])
        assert {c.name: c.role for c in schema.columns} == {"x1": "numeric", "x2": "numeric", "colour": "categorical"}
        X = to_model_frame(df, schema)
        assert X["x2"].isna().sum() == df["x2"].isna().sum() > 0  # NaN survives as NaN
        assert (X["colour"] == "").sum() == df["colour"].isna().sum() > 0  # missing category -> ""
