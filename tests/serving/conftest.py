"""Fixtures for serving tests: two short real runs on penguins, and a real `automl serve` on loopback."""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.cli_runner import DATA, ROOT, run_cli
from tests.conftest import importable, require

TOKEN = "test-token-0123456789abcdef"
PENGUINS = DATA / "penguins.csv"


@pytest.fixture(scope="session")
def serving_runs(tmp_path_factory) -> dict[str, Path]:
    """Two completed runs with different models: `linear` (the one to serve) and `baseline` (class priors)."""
    require("starlette", importable("starlette"), "automl serve needs the serve extra (pip install -e '.[serve]')")
    out = {}
    for family in ("linear", "baseline"):
        run = tmp_path_factory.mktemp(f"serve_{family}") / "run"
        p = run_cli(f"data.path={PENGUINS}", "task.target=species", "budget.time_s=15", "budget.n_trials=2",
                    f"estimators.include=[{family}]", f"hydra.run.dir={run}", timeout=90)
        assert p.returncode == 0, p.stderr[-3000:]
        out[family] = run
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """A keep-alive HTTP/1.1 client on loopback (stdlib only)."""

    def __init__(self, port: int, token: str | None = TOKEN) -> None:
        self.port, self.token = port, token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                token: str | bool | None = True) -> tuple[int, dict[str, str], bytes]:
        h = dict(headers or {})
        tok = self.token if token is True else token
        if tok:
            h["Authorization"] = f"Bearer {tok}"
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        self.conn.request(method, path, body=body, headers=h)
        r = self.conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

    def predict(self, records: Any, **kw: Any) -> tuple[int, dict[str, Any]]:
        status, _, data = self.request("POST", "/predict", records, **kw)
        return status, json.loads(data)

    def metrics(self) -> str:
        status, _, data = self.request("GET", "/metrics")
        assert status == 200
        return data.decode()

    def close(self) -> None:
        self.conn.close()


@contextlib.contextmanager
def serve(*args: str, env: dict[str, str] | None = None, token: str | None = TOKEN) -> Iterator[int]:
    """`python -m automl serve ARGS --port P` in its own process; yields P once /health answers."""
    port = free_port()
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    if token:
        full_env["AUTOML_SERVE_TOKEN"] = token
    proc = subprocess.Popen([sys.executable, "-m", "automl", "serve", *args, "--port", str(port)], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited {proc.returncode}: {proc.stdout.read()[-3000:]}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    c.close()
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("server did not answer /health within 60 s")
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        assert TOKEN not in (out or ""), "the token must never be logged"


def penguin_records(n: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    df = pd.read_csv(PENGUINS).drop(columns=["species"])
    if n is not None:
        df = df.sample(n=n, replace=n > len(df), random_state=seed)
    df = df.astype(object).where(df.notna(), None)
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in df.to_dict("records")]


def onnx_predictions(run: Path, records: list[dict[str, Any]]) -> tuple[list[Any], np.ndarray]:
    """What the run's model.onnx gives through the contract (the reference the server must match)."""
    from automl.export.contract import feeds_from_frame, input_schema
    from automl.export.onnx import session

    sess = session((run / "model.onnx").read_bytes())
    schema = input_schema(sess.get_modelmeta().custom_metadata_map)
    feeds = feeds_from_frame(pd.DataFrame(records), schema)
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds), strict=True))
    return list(np.asarray(out["label"]).reshape(-1)), np.asarray(out["probabilities"])
