"""The real `automl serve` on loopback returns the conformal outputs (issue 18): `intervals` for a regressor
run with task.coverage (normalised widths, whose difficulty model lives in the same graph), `prediction_sets`
for a classifier; both equal what the run's model.onnx gives through the contract, JSON and CSV alike."""
from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from tests.cli_runner import DATA, run_cli
from tests.conftest import importable, require
from tests.serving.conftest import Client, penguin_records, serve

pytestmark = [pytest.mark.slow, pytest.mark.ci]
WAGES = DATA / "slid_wages_600.csv"


def graph_outputs(run, records):
    from automl.export.contract import feeds_from_frame, input_schema
    from automl.export.onnx import session

    sess = session((run / "model.onnx").read_bytes())
    feeds = feeds_from_frame(pd.DataFrame(records), input_schema(sess.get_modelmeta().custom_metadata_map))
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds), strict=True))


@pytest.fixture(scope="module")
def conformal_runs(tmp_path_factory):
    require("starlette", importable("starlette"), "automl serve needs the serve extra (pip install -e '.[serve]')")
    runs = {}
    for name, data, target, extra in (
            ("regressor", WAGES, "wages", ["task.interval_scale=normalised", "estimators.include=[linear]"]),
            ("classifier", DATA / "penguins.csv", "species", ["estimators.include=[linear]"])):
        run = tmp_path_factory.mktemp(f"conformal_{name}") / "run"
        p = run_cli(f"data.path={data}", f"task.target={target}", "task.coverage=0.9", "budget.time_s=15",
                    "budget.n_trials=2", f"hydra.run.dir={run}", *extra, timeout=120)
        assert p.returncode == 0, p.stderr[-3000:]
        runs[name] = run
    return runs


def test_regressor_serves_intervals(conformal_runs):
    run = conformal_runs["regressor"]
    conf = json.loads((run / "manifest.json").read_text())["final"]["conformal"]
    assert conf["scale"] == "normalised"  # the difficulty model's nodes are served with the model
    df = pd.read_csv(WAGES).drop(columns=["wages"]).head(25)
    records = [{k: (None if pd.isna(v) else (v.item() if isinstance(v, np.generic) else v)) for k, v in r.items()}
               for r in df.to_dict("records")]
    with serve("--model", str(run)) as port:
        c = Client(port)
        status, _, data = c.request("GET", "/schema")
        assert status == 200 and "intervals" in json.loads(data)["outputs"]
        status, out = c.predict({"records": records})
        assert status == 200, out
        ref = graph_outputs(run, records)
        iv = np.asarray(out["intervals"])
        assert iv.shape == (25, 2) and (iv[:, 0] <= np.asarray(out["predictions"])).all()
        np.testing.assert_allclose(iv, ref["interval"], rtol=1e-6)
        widths = iv[:, 1] - iv[:, 0]
        assert widths.std() > 0  # normalised: the width follows the row
        status, _, body = c.request("POST", "/predict", df.to_csv(index=False),
                                    headers={"Content-Type": "text/csv", "Accept": "text/csv"})
        table = pd.read_csv(io.BytesIO(body))
        assert status == 200 and {"lower", "upper"} <= set(table.columns)
        np.testing.assert_allclose(table[["lower", "upper"]].to_numpy(), ref["interval"], rtol=1e-5)


def test_classifier_serves_prediction_sets(conformal_runs):
    run = conformal_runs["classifier"]
    records = penguin_records(30, seed=5)
    with serve("--model", str(run)) as port:
        c = Client(port)
        status, _, data = c.request("GET", "/schema")
        assert status == 200 and "prediction_sets" in json.loads(data)["outputs"]
        status, out = c.predict({"records": records})
        assert status == 200, out
        ref = graph_outputs(run, records)
        sets = np.asarray(ref["prediction_set"], dtype=bool)
        assert out["prediction_sets"] == [[cl for cl, inside in zip(out["classes"], row, strict=True) if inside]
                                          for row in sets.tolist()]
        assert any(out["prediction_sets"]) and len(out["prediction_sets"]) == 30
