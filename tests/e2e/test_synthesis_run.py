"""End to end: a free-text column through TF-IDF and a datetime column through date parts, both inside
the shipped graph; predict from raw columns (ISO dates as strings); the card lists the features."""
from __future__ import annotations

import json

import onnx
import pandas as pd
import pytest

from tests.cli_runner import DATA, run_cli

# the default suite's text run: cheap families and a trial cap keep it to a few seconds of search
FAST = ["estimators.include=[baseline,linear]", "budget.time_s=15", "budget.n_trials=4"]


def _run(tmp_path, data, target, *extra):
    run = tmp_path / "run"
    p = run_cli(f"data.path={data}", f"task.target={target}", "search.cv_folds=3", *(extra or ["budget.time_s=25"]),
                f"hydra.run.dir={run}", timeout=150)
    assert p.returncode == 0, p.stderr[-2000:]
    model = onnx.load(run / "model.onnx")
    schema = {c["name"]: c for c in json.loads({m.key: m.value for m in model.metadata_props}["input_schema"])}
    return run, model, schema, (run / "model_card.md").read_text()


def test_free_text_is_used_through_tfidf_inside_the_graph(tmp_path):
    run, model, schema, card = _run(tmp_path, DATA / "pypi_summaries.csv", "scientific", *FAST)
    assert schema["summary"] == {"name": "summary", "kind": "text", "dtype": "string"}
    assert "package" not in schema  # unique names: an id
    ops = {n.op_type for n in model.graph.node}
    assert "TfIdfVectorizer" in ops
    assert "Synthesised features the model uses" in card and "terms of 'summary'" in card
    assert json.loads((run / "parity.json").read_text())["passed"]


@pytest.mark.slow
def test_datetime_column_becomes_date_parts_and_predict_takes_iso_strings(tmp_path):
    df = pd.read_csv(DATA / "aids_600.csv")
    # MASS::Aids2 `diag` is the diagnosis date as days since 1960-01-01: give it back as an ISO date
    df["diag_date"] = (pd.Timestamp("1960-01-01") + pd.to_timedelta(df.pop("diag"), unit="D")).dt.strftime("%Y-%m-%d")
    path = tmp_path / "aids_dates.csv"
    df.to_csv(path, index=False)
    run, model, schema, card = _run(tmp_path, path, "status")
    assert schema["diag_date"] == {"name": "diag_date", "kind": "datetime", "dtype": "float64"}
    graph_input = next(i for i in model.graph.input if i.name == "diag_date")
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    assert "YEAR(diag_date)" in card and "weekday(diag_date)" in card
    out = tmp_path / "pred.csv"
    p = run_cli("predict", "--model", str(run), "--data", str(path), "--out", str(out))
    assert p.returncode == 0, p.stderr[-2000:]
    assert len(pd.read_csv(out)) == len(df)
    df.loc[0, "diag_date"] = "next tuesday"
    df.to_csv(path, index=False)
    p = run_cli("predict", "--model", str(run), "--data", str(path), "--out", str(out))
    assert p.returncode == 2 and "column 'diag_date'" in p.stderr and "Traceback" not in p.stderr
