"""The ONNX input-name contract end to end, on a column whose name has a dot (aids: `T.categ`).

A user with onnxruntime alone feeds one input per raw column, named exactly after the column
(skl2onnx alone would call it `T_categ`). `automl predict` and that user must get the same answer.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

import automl

from ..conftest import DATA, error_lines, run_automl

AIDS = DATA / "aids_600.csv"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("aids")
    code, out, err = run_automl(f"data.path={AIDS}", "task.target=status", "budget.time_s=20", "budget.n_trials=4",
                                "search.cv_folds=3", run_dir=root / "run", cwd=root, timeout=120)
    assert code == 0, (out + err)[-3000:]
    return root / "run"


def _raw_feeds(sess: ort.InferenceSession, df: pd.DataFrame) -> dict[str, np.ndarray]:
    """The README's contract, written independently of the engine's own helpers."""
    schema = json.loads(sess.get_modelmeta().custom_metadata_map["input_schema"])
    feeds = {}
    for col in schema:
        s = df[col["name"]]
        if col["dtype"] == "float32":
            feeds[col["name"]] = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float32).reshape(-1, 1)
        else:
            feeds[col["name"]] = s.astype(object).where(s.notna(), "").astype(str).to_numpy().reshape(-1, 1)
    return feeds


def test_graph_inputs_are_named_after_the_raw_columns(run):
    sess = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    schema = json.loads(meta["input_schema"])
    inputs = {i.name: i for i in sess.get_inputs()}
    assert list(inputs) == [c["name"] for c in schema]
    assert "T.categ" in inputs and "T_categ" not in inputs
    raw_columns = set(pd.read_csv(AIDS, nrows=1).columns) - {"status"}
    assert set(inputs) <= raw_columns
    for c in schema:
        assert inputs[c["name"]].type == ("tensor(float)" if c["dtype"] == "float32" else "tensor(string)")
        assert inputs[c["name"]].shape[1] == 1
    assert [o.name for o in sess.get_outputs()] == ["label", "probabilities"]
    assert json.loads(meta["class_labels"]) == ["A", "D"]
    assert (meta["target"], meta["task"], meta["metric"]) == ("status", "binary", "roc_auc")
    assert meta["engine_version"] == automl.__version__


def test_onnxruntime_alone_scores_raw_rows_with_missing_values(run):
    sess = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    classes = json.loads(sess.get_modelmeta().custom_metadata_map["class_labels"])
    df = pd.read_csv(AIDS)
    df.loc[::5, "T.categ"] = None  # missing category -> ""
    df.loc[1::7, "age"] = np.nan  # missing number -> NaN
    df.loc[2::9, "state"] = "Atlantis"  # a level never seen in training
    label, proba = sess.run(["label", "probabilities"], _raw_feeds(sess, df))
    assert proba.shape == (len(df), 2) and proba.dtype == np.float32
    assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert label.tolist() == [classes[i] for i in proba.argmax(axis=1)]
    accuracy = (label == df["status"].to_numpy()).mean()
    assert accuracy > (df["status"] == "D").mean()  # better than always answering the majority class


def test_predict_agrees_with_onnxruntime_and_names_a_missing_column(run, tmp_path):
    out = tmp_path / "preds.csv"
    code, _, err = run_automl("predict", "--model", str(run), "--data", str(AIDS), "--out", str(out), cwd=tmp_path)
    assert code == 0, err
    pred = pd.read_csv(out)
    df = pd.read_csv(AIDS)
    assert len(pred) == len(df) and list(pred.columns) == ["prediction", "proba_A", "proba_D"]
    sess = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    label, proba = sess.run(["label", "probabilities"], _raw_feeds(sess, df))
    assert pred["prediction"].tolist() == label.tolist()
    np.testing.assert_allclose(pred[["proba_A", "proba_D"]].to_numpy(), proba, atol=1e-6)

    bad = tmp_path / "no_tcateg.csv"
    df.drop(columns=["T.categ"]).to_csv(bad, index=False)
    code, _, err = run_automl("predict", "--model", str(run / "model.onnx"), "--data", str(bad),
                              "--out", str(tmp_path / "x.csv"), cwd=tmp_path)
    assert code == 2 and "Traceback" not in err
    errors = [ln for ln in error_lines(err) if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: column 'T.categ':"), err
    assert not (tmp_path / "x.csv").exists()
