"""Tree-ensemble trimming (export.variants=[trim], automl/export/trim.py): the rounds are chosen on the holdout
with the holdout-scored model, the shipped model is trimmed alike, exported and gated on parity against the
trimmed Python model; the variant is kept when its holdout score stays within the declared tolerance and its
graph is smaller, and refused when no prefix holds the score."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_regression

from automl.data.roles import infer_schema, to_model_frame
from automl.evaluation.metrics import get_metric
from automl.export.onnx import check_parity, export_onnx, stress_rows
from automl.export.trim import trim, units
from automl.export.variants import variants
from automl.search import objective as obj
from automl.stages.constraints import card_section


def _case(task: str, family: str, params: dict, n: int = 600):
    """(search data, holdout rows, holdout target, the holdout-scored pipeline, the shipped one: refit on all)."""
    if task == "regression":
        X, y = make_regression(n, 6, noise=1.0, random_state=0)
    else:
        X, y = make_classification(n, 8, n_informative=5, n_redundant=0, random_state=0)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]).assign(y=y)
    schema = infer_schema(df, "y", [], [])
    Xm, cut = to_model_frame(df, schema), 3 * n // 4
    metric = get_metric("rmse" if task == "regression" else "roc_auc")
    data = obj.SearchData(X=Xm.iloc[:cut], y=y[:cut], folds=[(np.arange(cut // 2), np.arange(cut // 2, cut))],
                          schema=schema, missing_numeric=[], task=task, metric=metric,
                          n_classes=0 if task == "regression" else 2, seed=0, families=[family], n_jobs=1)
    cand = obj.Candidate(family, params, {}, {})
    held = obj.build(data, cand).fit(data.X, data.y)
    shipped = obj.build(data, cand).fit(Xm, y)
    return data, Xm.iloc[cut:].reset_index(drop=True), y[cut:], held, shipped


def _trim(data, X_hold, y_hold, held, shipped, tol: float) -> dict:
    classes = None if data.task == "regression" else [0, 1]

    def score(p) -> float:
        return data.metric(y_hold, obj.predict(p, X_hold, data.task, data.n_classes), data.n_classes)

    return trim(held, shipped, score, data.metric.greater_is_better, tol,
                lambda p: export_onnx(p, data.schema, data.task, classes, {}),
                lambda m, p: check_parity(m, p, X_hold, data.schema, data.task, 1e-5, 0))


def test_a_forest_trimmed_within_the_tolerance_is_kept_smaller(tmp_path: Path):
    data, X_hold, y_hold, held, shipped = _case("binary", "random_forest", {"n_estimators": 200})
    made = _trim(data, X_hold, y_hold, held, shipped, tol=0.01)
    assert made["of"] == 200 and made["shipped_rounds"] == 200 and made["rounds"] < 200
    assert made["full_score"] - made["holdout_score_python"] <= 0.01  # roc_auc: within the declared tolerance
    assert made["parity"]["passed"] and made["parity"]["max_diff"] <= 1e-5
    # the kept prefix is the smallest that holds: every shorter one tried scored worse than the tolerance
    assert all(made["full_score"] - s > 0.01 for k, s in made["tried"] if k < made["rounds"])

    full = export_onnx(shipped, data.schema, "binary", [0, 1], {}).SerializeToString()
    rows = pd.concat([X_hold, stress_rows(X_hold, data.schema, 0)], ignore_index=True)

    def onnx_score(b: bytes) -> float:
        import onnxruntime as ort

        from automl.export.contract import feeds_from_frame

        out = ort.InferenceSession(b).run(["probabilities"], feeds_from_frame(X_hold, data.schema.to_json()))[0]
        return data.metric(y_hold, np.asarray(out, dtype=np.float64), 2)

    (v,) = variants(full, ["trim"], rows, X_hold, data.schema.to_json(), "binary", 1e-5, onnx_score, tmp_path,
                    trim_made=made)
    assert v["kept"] and v["file"] == "model.trim.onnx" and (tmp_path / "model.trim.onnx").exists()
    assert v["model_mb"] < v["shipped_model_mb"] * made["rounds"] / 200 * 1.2  # size shrinks with the trees
    small = onnx.load(str(tmp_path / "model.trim.onnx"))
    assert units(shipped.steps[-1][1]) == 200 and len(small.SerializeToString()) / 1e6 == pytest.approx(v["model_mb"],
                                                                                                         abs=1e-4)
    card = card_section({"variants": [v]})
    assert f"Variant trim: kept as `model.trim.onnx`: {made['rounds']} of 200 rounds/trees" in card


def test_trimming_refused_when_every_prefix_loses_score(tmp_path: Path):
    # slow boosting on a smooth target: every round still lowers the holdout RMSE, so no prefix holds it
    data, X_hold, y_hold, held, shipped = _case("regression", "hist_gradient_boosting",
                                                {"learning_rate": 0.01, "max_iter": 100})
    assert units(held.steps[-1][1]) == 100  # early stopping did not cut it short
    made = _trim(data, X_hold, y_hold, held, shipped, tol=0.0)
    assert "rounds" not in made and "model" not in made and "no prefix of fewer than 100" in made["why"]
    assert len(made["tried"]) == 9 and all(s > made["full_score"] for _, s in made["tried"])  # rmse: worse
    full = export_onnx(shipped, data.schema, "regression", None, {}).SerializeToString()
    (v,) = variants(full, ["trim"], X_hold, X_hold, data.schema.to_json(), "regression", 1e-5, None, tmp_path,
                    trim_made=made)
    assert not v["kept"] and v["why"] == made["why"] and not (tmp_path / "model.trim.onnx").exists()
    assert "Variant trim: none (no prefix of fewer than 100" in card_section({"variants": [v]})


def test_a_model_that_is_not_a_tree_ensemble_is_not_trimmed():
    data, X_hold, y_hold, held, shipped = _case("binary", "linear", {})
    made = _trim(data, X_hold, y_hold, held, shipped, tol=0.01)
    assert "model" not in made and "not a single tree-ensemble pipeline" in made["why"]


def test_the_choice_stops_at_its_time_limit():
    data, X_hold, y_hold, held, shipped = _case("binary", "random_forest", {"n_estimators": 50})
    classes = [0, 1]
    made = trim(held, shipped, lambda p: data.metric(y_hold, obj.predict(p, X_hold, "binary", 2), 2), True, 0.0,
                lambda p: export_onnx(p, data.schema, "binary", classes, {}),
                lambda m, p: check_parity(m, p, X_hold, data.schema, "binary", 1e-5, 0), time_limit_s=0.0)
    assert "model" not in made and made["tried"] == [] and made["why"].startswith("out of time")
