"""Registry: push/promote/rollback, and a running server that follows the stage back to the previous version."""
from __future__ import annotations

import json
import os
import time

import numpy as np

from tests.cli_runner import run_cli
from tests.serving.conftest import PENGUINS, Client, onnx_predictions, penguin_records, serve


def _reg(root, *args):
    p = run_cli("registry", "--root", str(root), *args, timeout=60)
    return p.returncode, p.stdout, p.stderr


def test_push_promote_rollback_and_serving_follows(serving_runs, tmp_path):
    root = tmp_path / "registry"
    linear, baseline = serving_runs["linear"], serving_runs["baseline"]
    rc, out, err = _reg(root, "push", str(linear), "--name", "penguins", "--stage", "production")
    assert rc == 0 and "penguins@v1" in out, err
    rc, out, _ = _reg(root, "push", str(baseline), "--name", "penguins")
    assert rc == 0 and "penguins@v2" in out
    rc, out, _ = _reg(root, "push", str(baseline), "--name", "penguins")  # same model: same version
    assert rc == 0 and "already registered" in out and "v2" in out
    rc, out, _ = _reg(root, "promote", "penguins", "v2")
    assert rc == 0 and "v2 (was v1)" in out
    idx = json.loads((root / "penguins" / "registry.json").read_text())
    assert [v["version"] for v in idx["versions"]] == [1, 2] and idx["stages"]["production"] == [1, 2]
    assert idx["versions"][1]["files"]["model.onnx"] == idx["versions"][1]["sha256"]
    assert (root / "penguins" / "v2" / "model.onnx").stat().st_mode & 0o222 == 0  # read-only copies

    records = penguin_records(30, seed=5)
    v1_labels, v1_proba = onnx_predictions(linear, records)
    _, v2_proba = onnx_predictions(baseline, records)
    assert not np.allclose(v1_proba, v2_proba)  # the two versions really differ

    with serve("--model", "penguins@production", "--registry", str(root), "--reload-s", "0.2") as port:
        c = Client(port)
        status, out = c.predict(records)
        assert status == 200 and out["model"] == "penguins@v2"
        np.testing.assert_allclose(out["probabilities"], v2_proba, atol=1e-6)
        rc, msg, _ = _reg(root, "rollback", "penguins")
        assert rc == 0 and "v1 (rolled back from v2)" in msg
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status, out = c.predict(records)
            if out.get("model") == "penguins@v1":
                break
            time.sleep(0.1)
        assert status == 200 and out["model"] == "penguins@v1"
        assert out["predictions"] == v1_labels
        np.testing.assert_allclose(out["probabilities"], v1_proba, atol=1e-6)
        assert 'automl_model_reloads_total{ref="penguins@production",outcome="swapped"} 1' in c.metrics()

    # nothing left to roll back to: a one-line error, exit 2
    rc, _, err = _reg(root, "rollback", "penguins")
    assert rc == 2 and "no earlier version" in err
    rc, out, _ = _reg(root, "list")
    assert rc == 0 and "v1" in out and "production" in out


def test_ab_split_with_metrics_per_version(serving_runs, tmp_path):
    root = tmp_path / "registry"
    for run in (serving_runs["linear"], serving_runs["baseline"]):
        assert _reg(root, "push", str(run), "--name", "penguins")[0] == 0
    row = penguin_records(1)
    with serve("--model", "penguins@v1", "--model", "penguins@v2", "--traffic", "70,30",
               "--registry", str(root)) as port:
        c = Client(port)
        seen = [c.predict(row)[1]["model"] for _ in range(200)]
        n1, n2 = seen.count("penguins@v1"), seen.count("penguins@v2")
        assert n1 + n2 == 200 and 105 <= n1 <= 175, (n1, n2)  # 70% +- ~5 sd
        # a routing key always reaches the same version
        sticky = {c.predict(row, headers={"X-Routing-Key": "user-42"})[1]["model"] for _ in range(20)}
        assert len(sticky) == 1
        text = c.metrics()
        for version, n in (("penguins@v1", n1), ("penguins@v2", n2)):
            prefix = f'automl_rows_scored_total{{version="{version}"}}'
            line = next(ln for ln in text.splitlines() if ln.startswith(prefix))
            assert float(line.split()[-1]) >= n
        assert 'automl_model_info{version="penguins@v1"' in text and 'automl_model_info{version="penguins@v2"' in text


def test_registry_refuses_modified_copy(serving_runs, tmp_path):
    root = tmp_path / "registry"
    assert _reg(root, "push", str(serving_runs["linear"]), "--name", "m", "--stage", "production")[0] == 0
    p = run_cli("drift", "--model", "m@production", "--registry", str(root), "--data", str(PENGUINS), timeout=60)
    assert p.returncode == 0 and "drift in 0 of 7 feature(s)" in p.stdout, p.stdout + p.stderr
    card = root / "m" / "v1" / "reference_profile.json"
    os.chmod(card, 0o644)
    card.write_text(card.read_text().replace('"rows": 344', '"rows": 345'))
    p = run_cli("serve", "--model", "m@production", "--registry", str(root), "--no-auth", timeout=60)
    assert p.returncode == 2 and "differs from the registry record" in p.stderr
    p = run_cli("serve", "--model", "m@staging", "--registry", str(root), "--no-auth", timeout=60)
    assert p.returncode == 2 and "no version in stage 'staging'" in p.stderr
    p = run_cli("drift", "--model", "m@production", "--registry", str(root), "--data", str(PENGUINS), timeout=60)
    assert p.returncode == 2 and "differs from the registry record" in p.stderr
    rc, _, err = _reg(root, "push", str(serving_runs["linear"]), "--name", "bad name!")
    assert rc == 2 and "not a valid model name" in err
