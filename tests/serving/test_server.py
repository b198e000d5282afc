"""The real `automl serve` on loopback: auth, schema errors, size limit, metrics, a burst, drift in /metrics."""
from __future__ import annotations

import json
import re
import shutil
import threading

import numpy as np
import pandas as pd
import pytest

from tests.cli_runner import run_cli
from tests.serving.conftest import TOKEN, Client, onnx_predictions, penguin_records, serve

ROW = {"island": "Biscoe", "bill_length_mm": 45.1, "bill_depth_mm": 14.5, "flipper_length_mm": 215,
       "body_mass_g": 5000, "sex": "female", "year": 2008}


@pytest.fixture(scope="module")
def server(serving_runs):
    # small body limit (64 KiB) so the 413 check needs no large upload; drift window of 300 rows
    with serve("--model", str(serving_runs["linear"]), "--max-body-mb", "0.0625", "--drift-window", "300",
               "--drift-min-rows", "100") as port:
        yield port


def test_auth(server):
    c = Client(server)
    status, headers, _ = c.request("POST", "/predict", [ROW], token=None)
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    assert c.request("POST", "/predict", [ROW], token="wrong-token")[0] == 401
    assert c.request("POST", "/predict", [ROW], headers={"Authorization": f"Basic {TOKEN}"}, token=None)[0] == 401
    assert c.request("GET", "/metrics", token=None)[0] == 401
    assert c.request("GET", "/schema", token=None)[0] == 401
    assert c.request("GET", "/health", token=None)[0] == 200  # liveness probes carry no token
    assert c.predict([ROW])[0] == 200


def test_schema_and_predictions_match_onnx(server, serving_runs):
    c = Client(server)
    status, _, data = c.request("GET", "/schema")
    doc = json.loads(data)
    assert status == 200 and [i["name"] for i in doc["inputs"]] == [
        "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"]
    assert doc["categories"]["island"] == ["Biscoe", "Dream", "Torgersen"]
    records = penguin_records(40, seed=3)
    records[0]["bill_depth_mm"] = None  # missing values travel as null
    records[1]["sex"] = None
    status, out = c.predict({"records": records})
    labels, proba = onnx_predictions(serving_runs["linear"], records)
    assert status == 200 and out["predictions"] == labels
    np.testing.assert_allclose(out["probabilities"], proba, atol=1e-6)
    # CSV in, same predictions
    csv = pd.DataFrame(records).to_csv(index=False)
    status, _, data = c.request("POST", "/predict", csv, headers={"Content-Type": "text/csv"})
    assert status == 200 and json.loads(data)["predictions"] == labels


@pytest.mark.parametrize("change, column, words", [
    ({"drop": "bill_length_mm"}, "bill_length_mm", "missing"),
    ({"bill_depth_mm": "deep"}, "bill_depth_mm", "expects a number"),
    ({"body_mass_g": True}, "body_mass_g", "expects a number"),
    ({"island": "Atlantis"}, "island", "not seen in training"),
    ({"sex": ["male"]}, "sex", "expects a string"),
])
def test_schema_errors_name_the_column(server, change, column, words):
    row = dict(ROW)
    if "drop" in change:
        del row[change["drop"]]
    else:
        row.update(change)
    status, out = Client(server).predict([ROW, row])
    assert status == 422, out
    assert out["column"] == column and words in out["error"] and column in out["error"]


def test_csv_schema_errors(server):
    c = Client(server)
    bad = pd.DataFrame([ROW]).drop(columns=["year"]).to_csv(index=False)
    status, _, data = c.request("POST", "/predict", bad, headers={"Content-Type": "text/csv"})
    assert status == 422 and json.loads(data)["column"] == "year"
    bad = pd.DataFrame([{**ROW, "flipper_length_mm": "long"}]).to_csv(index=False)
    status, _, data = c.request("POST", "/predict", bad, headers={"Content-Type": "text/csv"})
    assert status == 422 and json.loads(data)["column"] == "flipper_length_mm"


def test_bad_json_and_size_limit(server):
    c = Client(server)
    assert c.request("POST", "/predict", b"{not json")[0] == 400
    assert c.request("POST", "/predict", b"[]")[0] == 400
    big = json.dumps([ROW] * 1000).encode()  # ~130 KB > 64 KiB
    status, _, data = c.request("POST", "/predict", big)
    assert status == 413 and "exceeds" in json.loads(data)["error"]


def _metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(name + ("{" + want if want else "")) and not line.startswith("#"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{{{want}}} not in /metrics")


def test_burst_metrics_and_drift_window(server):
    c = Client(server)
    before = c.metrics()
    rows_before = _metric(before, "automl_rows_scored_total", version="run")
    records = penguin_records(300, seed=1)
    codes: list[int] = []

    def worker(chunk: list[dict]) -> None:
        cl = Client(server)
        for r in chunk:
            codes.append(cl.request("POST", "/predict", [r])[0])
        cl.close()

    threads = [threading.Thread(target=worker, args=(records[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(codes) == 300 and set(codes) == {200}  # a bounded burst of 300 single-row requests, 4 clients
    text = c.metrics()
    assert _metric(text, "automl_rows_scored_total", version="run") == rows_before + 300
    assert _metric(text, "automl_predict_latency_seconds_count", version="run") >= 300
    assert _metric(text, "automl_predict_latency_seconds_bucket", version="run", le="+Inf") >= 300
    assert re.search(r'automl_http_requests_total\{path="/predict",code="200"\} \d+', text)
    # the window holds 300 unshifted rows: no feature flagged
    assert _metric(text, "automl_drift_window_rows", version="run") == 300
    for feature in ("bill_length_mm", "island", "body_mass_g"):
        assert _metric(text, "automl_feature_drift", version="run", feature=feature) == 0
    # 300 rows with bill length shifted by +8 mm fill the window: that feature, and only that one, drifts
    shifted = penguin_records(300, seed=2)
    for r in shifted:
        if r["bill_length_mm"] is not None:
            r["bill_length_mm"] += 8.0
    for i in range(0, 300, 100):
        assert c.predict(shifted[i:i + 100])[0] == 200
    text = c.metrics()
    assert _metric(text, "automl_feature_drift", version="run", feature="bill_length_mm") == 1
    assert _metric(text, "automl_feature_drift_psi", version="run", feature="bill_length_mm") > 0.2
    assert _metric(text, "automl_feature_drift", version="run", feature="flipper_length_mm") == 0


def test_errors_by_code_in_metrics(server):
    c = Client(server)
    c.request("POST", "/predict", [ROW], token="nope")
    c.predict([{**ROW, "island": "Atlantis"}])
    text = c.metrics()
    assert _metric(text, "automl_http_errors_total", path="/predict", code="401") >= 1
    assert _metric(text, "automl_http_errors_total", path="/predict", code="422") >= 1
    assert _metric(text, "automl_predict_requests_total", version="run", code="422") >= 1


def test_refuses_tampered_model_and_missing_token(serving_runs, tmp_path):
    bad = tmp_path / "run"
    shutil.copytree(serving_runs["linear"], bad)
    data = bytearray((bad / "model.onnx").read_bytes())
    data[-1] ^= 0xFF
    (bad / "model.onnx").write_bytes(bytes(data))
    p = run_cli("serve", "--model", str(bad), "--port", "1", env={"AUTOML_SERVE_TOKEN": TOKEN}, timeout=60)
    assert p.returncode == 2 and "SHA-256" in p.stderr and "Traceback" not in p.stderr
    env = {"AUTOML_SERVE_TOKEN": ""}
    p = run_cli("serve", "--model", str(serving_runs["linear"]), env=env, timeout=60)
    assert p.returncode == 2 and "bearer token" in p.stderr


def test_refuses_external_data(serving_runs):
    import onnx

    from automl.errors import UserError
    from automl.serving.artefact import check_no_external_data

    model = onnx.load_from_string((serving_runs["linear"] / "model.onnx").read_bytes())
    check_no_external_data(model.SerializeToString(), "--model")  # the exported graph passes
    t = model.graph.initializer[0]
    t.data_location = onnx.TensorProto.EXTERNAL
    t.external_data.add(key="location", value="../../etc/passwd")
    with pytest.raises(UserError, match="external data"):
        check_no_external_data(model.SerializeToString(), "--model")

