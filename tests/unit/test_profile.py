"""The data profile: statistics per column and the warnings a user should read before trusting a model."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl.data.profile import build_profile
from automl.data.roles import infer_schema


def _profile(df: pd.DataFrame, task: str) -> dict:
    return build_profile(df, "y", task, infer_schema(df, "y", [], []), seed=0)


def _base(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": rng.normal(40, 10, n),
        "colour": rng.choice(["red", "green", "blue"], n),
        "y": rng.integers(0, 2, n),
    })


def _warning_for(p: dict, column: str) -> list[str]:
    return [w for w in p["warnings"] if f"'{column}'" in w]


def test_clean_data_has_no_column_warnings():
    p = _profile(_base(), "binary")
    assert _warning_for(p, "age") == [] and _warning_for(p, "colour") == []
    cols = {c["name"]: c for c in p["columns"]}
    assert "leakage_suspect" not in cols["age"] and cols["age"]["single_column_score"] < 0.99
    assert p["n_rows"] == 200 and p["n_columns"] == 3 and p["n_features"] == 2 and p["task"] == "binary"
    assert p["roles"]["numeric"] == ["age"] and p["roles"]["categorical"] == ["colour"]


def test_id_like_and_constant_columns_are_reported():
    df = _base().assign(customer_id=np.arange(200), batch="b1")
    p = _profile(df, "binary")
    (w_id,) = _warning_for(p, "customer_id")
    assert "looks like an ID" in w_id and "excluded" in w_id
    (w_const,) = _warning_for(p, "batch")
    assert "is constant" in w_const and "excluded" in w_const


def test_heavy_missing_is_reported_with_its_share():
    df = _base()
    df.loc[:149, "age"] = np.nan  # 75% missing
    df["light"] = np.where(np.arange(200) < 20, np.nan, 1.0 + np.arange(200) % 5)  # 10% missing: no warning
    p = _profile(df, "binary")
    assert _warning_for(p, "age") == ["column 'age' is 75% missing"]
    assert _warning_for(p, "light") == []
    cols = {c["name"]: c for c in p["columns"]}
    assert cols["age"]["missing_pct"] == 75.0 and cols["light"]["missing_pct"] == 10.0


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_a_copy_of_the_target_is_a_leakage_suspect(task):
    rng = np.random.default_rng(1)
    n = 300
    y = {"binary": rng.integers(0, 2, n), "multiclass": rng.choice(["p", "q", "r"], n),
         "regression": rng.normal(size=n)}[task]
    df = pd.DataFrame({"noise": rng.normal(size=n), "copy": y, "y": y})
    p = _profile(df, task)
    (w,) = _warning_for(p, "copy")
    assert "alone predicts the target" in w and "possible leakage" in w
    assert ("R^2" in w) == (task == "regression")
    cols = {c["name"]: c for c in p["columns"]}
    assert cols["copy"]["leakage_suspect"] is True and cols["copy"]["single_column_score"] >= 0.99
    assert "leakage_suspect" not in cols["noise"] and _warning_for(p, "noise") == []


def test_target_summary_imbalance_and_duplicates():
    df = pd.DataFrame({"x": np.r_[np.arange(110), [5, 5]].astype(float), "y": ["a"] * 100 + ["b"] * 10 + ["a", "a"]})
    p = _profile(df, "binary")
    assert p["target"]["classes"] == {"a": 102, "b": 10}
    assert p["target"]["imbalance_ratio"] == pytest.approx(10.2)
    assert any("imbalanced" in w for w in p["warnings"])
    # the two appended rows repeat row 5 exactly
    assert p["duplicate_rows"] == 2 and any(w.startswith("2 duplicate rows") for w in p["warnings"])


def test_numeric_statistics_are_those_of_the_column():
    rng = np.random.default_rng(2)
    v = np.r_[rng.normal(0, 1, 95), [50, 60, 70, 80, 90]]
    df = pd.DataFrame({"v": v, "y": rng.integers(0, 2, 100)})
    col = _profile(df, "binary")["columns"][0]
    assert col["mean"] == pytest.approx(v.mean()) and col["max"] == 90.0
    q1, q3 = np.percentile(v, [25, 75])
    share = ((v < q1 - 1.5 * (q3 - q1)) | (v > q3 + 1.5 * (q3 - q1))).mean()
    assert col["outlier_share"] == pytest.approx(share, abs=1e-4) and col["outlier_share"] >= 0.05
    assert col["skew"] > 2  # the outliers make it right-skewed


def test_imbalanced_target_is_flagged_with_its_minority_share():
    df = _base(n=220)
    df["y"] = np.r_[np.zeros(200, dtype=int), np.ones(20, dtype=int)]
    t = _profile(df, "binary")["target"]
    assert t["imbalanced"] is True and t["minority_class"] == "1"
    assert t["minority_share"] == pytest.approx(20 / 220, abs=1e-4)
    balanced = _profile(_base(), "binary")["target"]
    assert balanced["imbalanced"] is False
