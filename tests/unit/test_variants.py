"""Lighter graphs (automl/export/variants.py): an MLP's int8 and float16 variants are measured against the
shipped graph; one that breaks the parity gate's tolerance is refused and not written, one within a declared
looser tolerance is kept, smaller, and written beside model.onnx."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
from sklearn.datasets import make_classification

from automl.data.roles import infer_schema, to_model_frame
from automl.evaluation.metrics import get_metric
from automl.export.contract import metadata
from automl.export.onnx import check_parity, export_onnx, stress_rows
from automl.export.variants import float16, int8, variants
from automl.search import objective as obj


def _fitted(family: str, n: int, n_features: int,
            toy: dict | None = None) -> tuple[bytes, pd.DataFrame, obj.SearchData, Any]:
    """The family's default configuration fitted on the first 3/4 of a classification frame, exported."""
    X, y = make_classification(n, n_features, n_informative=min(8, n_features), n_redundant=0, random_state=0)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(n_features)])
    df["y"] = y
    schema = infer_schema(df, "y", [], [])
    cut = 3 * n // 4
    data = obj.SearchData(X=to_model_frame(df, schema), y=y, folds=[(np.arange(cut), np.arange(cut, n))],
                          schema=schema, missing_numeric=[], task="binary", metric=get_metric("roc_auc"),
                          n_classes=2, seed=0, families=[family], n_jobs=1)
    params = obj.default_params(data, family)
    cand = obj.Candidate(family, {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith(family + ".")},
                         {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("pre.")}, {})
    pipe = obj.build(data, cand, toy).fit(data.X.iloc[:cut], y[:cut])
    model = export_onnx(pipe, schema, "binary", [0, 1], metadata(schema, "binary", "y", "roc_auc", [0, 1], "t"))
    return model.SerializeToString(), data.X.iloc[cut:], data, pipe


@pytest.fixture(scope="module")
def mlp() -> tuple[bytes, pd.DataFrame, obj.SearchData]:
    model, hold, data, pipe = _fitted("mlp", 400, 12)
    # the shipped graph passes the gate
    check_parity(onnx.load_from_string(model), pipe, hold, data.schema, "binary", 1e-5, 0)
    return model, hold, data


def test_a_quantised_variant_that_breaks_the_gate_is_refused(mlp, tmp_path: Path):
    model, hold, data = mlp
    rows = pd.concat([hold, stress_rows(hold, data.schema, 0)], ignore_index=True)
    schema = data.schema.to_json()
    out = variants(model, ["int8"], rows, hold, schema, "binary", 1e-5, None, tmp_path)
    (v,) = out
    assert v["kind"] == "int8" and not v["kept"] and v["max_diff"] > 1e-5 and "> 1e-05" in v["why"]
    assert v["model_mb"] < v["shipped_model_mb"]  # it was lighter, and still refused
    assert not (tmp_path / "model.int8.onnx").exists()


def test_a_variant_within_a_declared_looser_tolerance_is_kept(mlp, tmp_path: Path):
    model, hold, data = mlp
    rows = pd.concat([hold, stress_rows(hold, data.schema, 0)], ignore_index=True)
    out = variants(model, ["float16", "int8"], rows, hold, data.schema.to_json(), "binary", 0.2,
                   lambda b: 0.5, tmp_path)
    f16 = out[0]
    assert f16["kind"] == "float16" and f16["kept"] and f16["max_diff"] <= 0.2 and f16["holdout_score"] == 0.5
    assert (tmp_path / "model.float16.onnx").read_bytes() == float16(model)
    assert f16["model_mb"] < f16["shipped_model_mb"]


def test_graphs_without_matmul_weights_have_no_variant():
    model, *_ = _fitted("random_forest", 100, 4, {"n_estimators": 5})
    assert int8(model) is None and float16(model) is None
