"""tracking=mlflow against a real MLflow tracking server started here on loopback (`mlflow server`, SQLite
backend store, local artefact store): a --multirun sweep of pinned hyperparameters lands as one parent run
with a child run per job (params, metrics, tags, artefacts, the registered pyfunc model with the same
predictions as onnxruntime on model.onnx); a server that is down or refuses leaves the run as it was.

Slow (a server start and three short runs, about a minute): .ci/run runs it with `-m slow tests/tracking`."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from automl.config.schema import RunConfig, TrackingConfig
from automl.io import RunPaths
from tests.cli_runner import run_cli
from tests.conftest import importable, require

pytestmark = [pytest.mark.slow, pytest.mark.ci]

PENGUINS = Path(__file__).resolve().parents[2] / "automl" / "demo" / "penguins.csv"
# n_trials ends each run; the time budget only has to be generous enough for a loaded machine
FAST = ["estimators.include=[lightgbm]", "budget.time_s=30", "budget.n_trials=3"]
REGISTERED = "penguins_lgbm"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> str:
    """A real `mlflow server` on 127.0.0.1 (SQLite backend store, artefacts served from a local folder)."""
    require("mlflow server", importable("mlflow") and importable("flask") and importable("alembic")
            and importable("graphene") and importable("aiohttp"),
            "the test starts a real MLflow server: pip install -e '.[dev]' (extras mlflow, mlflow-server)")
    root = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artefacts")],
        cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,  # its own group: stopped whole
        # no job runner: tracking and the registry use none, and its consumer processes (five here) took the
        # CPU the server's start and the sweep waited for
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its uvicorn worker, by the group this test made
        try:
            proc.wait(timeout=5)  # mlflow server can linger after its worker stopped
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def client(uri: str):
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow, mlflow.MlflowClient(uri)


def raw_rows() -> pd.DataFrame:
    """Raw rows as a user sends them: missing values, and categories the model never saw."""
    raw = pd.read_csv(PENGUINS).drop(columns=["species"])
    odd = raw.head(40).copy()
    odd.loc[odd.index[:20], "island"] = "Atlantis"
    odd.loc[odd.index[10:30], "bill_length_mm"] = np.nan
    odd.loc[odd.index[25:], "sex"] = None
    return pd.concat([raw, odd], ignore_index=True)


def onnx_scores(model: Path, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    import onnxruntime as ort

    from automl.export.contract import feeds_from_frame, input_schema

    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    feeds = feeds_from_frame(frame, input_schema(sess.get_modelmeta().custom_metadata_map))
    label, proba = sess.run(["label", "probabilities"], feeds)
    return np.asarray(label), np.asarray(proba)


def folder_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def sweep(server, tmp_path_factory) -> Path:
    """A --multirun sweep over one pinned hyperparameter, tracked to the server, the model registered."""
    out = tmp_path_factory.mktemp("tracked_sweep")
    sweep_dir = out / "sweep"
    p = run_cli("--multirun", *FAST, "+search.fixed.lightgbm.num_leaves=7,31", "tracking=mlflow",
                f"tracking.uri={server}", "tracking.experiment=sweep_test", f"tracking.register_as={REGISTERED}",
                f"hydra.sweep.dir={sweep_dir}", cwd=out, timeout=240)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "tracking failed" not in p.stdout + p.stderr
    return sweep_dir


def test_a_sweep_is_one_parent_run_with_a_child_run_per_job(server, sweep):
    _, c = client(server)
    exp = c.get_experiment_by_name("sweep_test")
    runs = c.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("automl.kind") == "sweep"]
    assert len(parents) == 1 and len(runs) == 3
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["automl.sweep_dir"] == str(sweep.resolve())
    assert {a.path for a in c.list_artifacts(parent.info.run_id)} >= {"summary.csv", "report.html"}
    children = sorted((r for r in runs if r is not parent), key=lambda r: r.info.run_name)
    assert [r.info.run_name for r in children] == ["0_penguins", "1_penguins"]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert [r.data.params["search.fixed.lightgbm.num_leaves"] for r in children] == ["7", "31"]


def test_each_run_holds_config_scores_time_trials_tags_and_artefacts(server, sweep):
    _, c = client(server)
    exp = c.get_experiment_by_name("sweep_test")
    for job in sorted(sweep.glob("[0-9]_*")):
        run = c.search_runs([exp.experiment_id], filter_string=f"attributes.run_name = '{job.name}'")[0]
        m = json.loads((job / "manifest.json").read_text())
        d = run.data
        assert run.info.status == "FINISHED"
        # the resolved config as params
        assert d.params["budget.time_s"] == "30.0" and d.params["estimators.include"] == "['lightgbm']"
        assert d.params["tracking.experiment"] == "sweep_test" and d.params["task.target"] == "species"
        # scores, time and trial counts, equal to what the run folder says
        assert d.metrics["cv_score"] == pytest.approx(m["final"]["cv_mean"])
        assert d.metrics["holdout_score"] == pytest.approx(m["final"]["holdout_score"])
        assert d.metrics["holdout_log_loss"] == pytest.approx(m["final"]["holdout_metrics"]["log_loss"])
        assert d.metrics["time_used_s"] == pytest.approx(m["budget"]["used_s"])
        assert d.metrics["trials_total"] == m["search"]["trials_total"]
        assert d.metrics["trials_completed"] == m["search"]["completed"]
        lb = pd.read_csv(job / "leaderboard.csv")
        done = lb[pd.to_numeric(lb["trial"], errors="coerce").notna() & lb["cv_mean"].notna()]
        history = c.get_metric_history(run.info.run_id, "trial_cv")
        got = sorted((h.step, h.value) for h in history)
        want = sorted(zip(done["trial"].astype(int), done["cv_mean"], strict=True))
        # steps exactly, values approximately (pytest.approx takes no nested tuples from pytest 9 on)
        assert [s for s, _ in got] == [s for s, _ in want]
        assert [v for _, v in got] == pytest.approx([v for _, v in want])
        # tags
        assert d.tags["automl.engine_version"] == m["engine_version"]
        assert d.tags["automl.data_sha256"] == m["data"]["sha256"]
        assert d.tags.get("automl.git_sha", "") == (m["git_sha"] or "")
        # artefacts: the run folder's files, byte for byte
        names = {a.path for a in c.list_artifacts(run.info.run_id)}
        assert names >= {"model.onnx", "model_card.md", "report.html", "leaderboard.csv", "profile.json"}
        got = Path(c.download_artifacts(run.info.run_id, "model.onnx", str(job.parent.parent / f"dl_{job.name}")))
        assert got.read_bytes() == (job / "model.onnx").read_bytes()
        # the pinned value is in the leaderboard and the card
        assert all(json.loads(f) == {"lightgbm.num_leaves": int(d.params["search.fixed.lightgbm.num_leaves"])}
                   for f in lb.loc[lb["family"] == "lightgbm", "fixed"])
        assert f"`lightgbm.num_leaves={d.params['search.fixed.lightgbm.num_leaves']}`" in (
            job / "model_card.md").read_text()


def test_the_pyfunc_model_predicts_what_onnxruntime_predicts_and_is_registered(server, sweep):
    mlflow, c = client(server)
    exp = c.get_experiment_by_name("sweep_test")
    frame = raw_rows()
    versions = {int(v.version): v for v in c.search_model_versions(f"name='{REGISTERED}'")}
    assert sorted(versions) == [1, 2]  # one version per job of the sweep
    for job in sorted(sweep.glob("[0-9]_*")):
        run = c.search_runs([exp.experiment_id], filter_string=f"attributes.run_name = '{job.name}'")[0]
        version = next(n for n, v in versions.items() if v.run_id == run.info.run_id)
        label, proba = onnx_scores(job / "model.onnx", frame)
        for uri in (f"runs:/{run.info.run_id}/model", f"models:/{REGISTERED}/{version}"):
            out = mlflow.pyfunc.load_model(uri).predict(frame)
            got = out[[f"proba_{k}" for k in ("Adelie", "Chinstrap", "Gentoo")]].to_numpy()
            assert np.abs(got - proba).max() <= 1e-6, uri
            assert (out["prediction"].to_numpy() == label).all(), uri


def test_compare_ranks_the_pinned_settings(sweep):
    p = run_cli("compare", str(sweep), cwd=sweep)
    assert p.returncode == 0, p.stderr
    ranks = (sweep / "compare.md").read_text().split("## Average rank")[1]
    assert "search.fixed.lightgbm.num_leaves=7" in ranks and "search.fixed.lightgbm.num_leaves=31" in ranks


def test_a_server_that_is_down_fails_the_tracking_not_the_run(tmp_path):
    run_dir = tmp_path / "run"
    p = run_cli(*FAST, "tracking=mlflow", f"tracking.uri=http://127.0.0.1:{free_port()}",
                f"hydra.run.dir={run_dir}", cwd=tmp_path, timeout=180)
    assert p.returncode == 0, p.stderr[-3000:]
    said = [ln for ln in (p.stdout + p.stderr).splitlines() if "tracking failed" in ln]
    assert len(said) == 1 and "Connection refused" in said[0], said
    assert not [ln for ln in p.stderr.splitlines() if "Traceback" in ln or "Retrying" in ln]
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["status"] == "COMPLETE"
    for name in ("model.onnx", "leaderboard.csv", "model_card.md", "report.html", "profile.json"):
        assert (run_dir / name).is_file(), name


def test_a_server_that_refuses_leaves_the_run_folder_as_it_was(server, sweep, caplog):
    from automl.tracking.mlflow_tracking import track

    job = sorted(sweep.glob("[0-9]_*"))[0]
    before = folder_digest(job)
    cfg = RunConfig(tracking=TrackingConfig(backend="mlflow", uri=f"{server}/not-mlflow", experiment="refused"))
    with caplog.at_level(logging.INFO, logger="automl"):
        assert track(cfg, RunPaths(job)) is None
    said = [r.getMessage() for r in caplog.records if "tracking failed" in r.getMessage()]
    assert len(said) == 1, said
    assert folder_digest(job) == before
