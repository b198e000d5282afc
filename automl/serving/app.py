"""The HTTP app (Starlette): /predict, /health, /schema, /metrics, over one model or an A/B split.

Auth: every route but /health needs `Authorization: Bearer <token>`; tokens are compared as SHA-256
digests with hmac.compare_digest (constant time, length not leaked) and never logged.
Single small requests score on the event loop (a thread hand-off costs more than a one-row
onnxruntime call); large bodies parse and score in a worker thread.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from automl.export.contract import conformal_columns
from automl.monitoring.drift import Thresholds, compare
from automl.serving.artefact import LoadedModel, load_model
from automl.serving.inputs import (
    RequestError,
    check_categories,
    feeds_from_csv,
    feeds_from_records,
    records_from_json,
)
from automl.serving.metrics import Counter, Gauge, Histogram, render
from automl.serving.model_store import INDEX, resolve

log = logging.getLogger("automl.serve")
INLINE_BYTES = 16_384  # bodies up to this size score on the event loop


@dataclass
class ServeOptions:
    token: str | None
    max_body_bytes: int = 8 * 2**20
    allow_unseen: bool = False
    drift_window: int = 1000
    drift_min_rows: int = 100
    reload_s: float = 5.0
    threads: int = 1
    thresholds: Thresholds = field(default_factory=Thresholds)


@dataclass
class Variant:
    """One served version and its share of the traffic; `ref` is what the user named (path or NAME@stage)."""
    ref: str
    weight: float
    model: LoadedModel
    registry_root: Path | None = None
    window: deque[tuple[int, dict[str, np.ndarray]]] = field(default_factory=deque)
    window_rows: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    index_mtime: float = 0.0

    def remember(self, n: int, feeds: dict[str, np.ndarray], limit: int) -> None:
        """Keep the last `limit` rows of inputs for drift (in memory only, binned when /metrics is read)."""
        if self.model.reference is None or limit <= 0:
            return
        with self.lock:
            self.window.append((n, feeds))
            self.window_rows += n
            while self.window and self.window_rows - self.window[0][0] >= limit:
                self.window_rows -= self.window.popleft()[0]

    def window_feeds(self, limit: int) -> tuple[int, dict[str, np.ndarray]]:
        with self.lock:
            items = list(self.window)
        if not items:
            return 0, {}
        names = items[0][1].keys()
        feeds = {c: np.concatenate([f[c] for _, f in items])[-limit:] for c in names}
        return len(next(iter(feeds.values()))), feeds


class ModelSet:
    def __init__(self, variants: list[Variant]) -> None:
        self.variants = variants
        total = sum(v.weight for v in variants)
        self.cum = np.cumsum([v.weight / total for v in variants]).tolist()
        self._rng = random.Random()

    def choose(self, key: str | None) -> Variant:
        if len(self.variants) == 1:
            return self.variants[0]
        if key:  # sticky: one routing key always reaches the same version
            u = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64
        else:
            u = self._rng.random()
        for v, c in zip(self.variants, self.cum, strict=True):
            if u < c:
                return v
        return self.variants[-1]


class Telemetry:
    def __init__(self) -> None:
        self.http = Counter("automl_http_requests_total", "HTTP requests by path and status code", ("path", "code"))
        self.errors = Counter("automl_http_errors_total", "HTTP error responses by path and status code",
                              ("path", "code"))
        self.predict = Counter("automl_predict_requests_total", "Prediction requests by model version and status code",
                               ("version", "code"))
        self.rows = Counter("automl_rows_scored_total", "Rows scored by model version", ("version",))
        self.latency = Histogram("automl_predict_latency_seconds",
                                 "Server-side /predict latency (body read to response ready) by model version",
                                 ("version",))
        self.reloads = Counter("automl_model_reloads_total", "Model swaps after a registry stage changed, by outcome",
                               ("ref", "outcome"))

    def all(self) -> list[Any]:
        return [self.http, self.errors, self.predict, self.rows, self.latency, self.reloads]


def _token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def build_app(models: ModelSet, opts: ServeOptions) -> Any:
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    tel = Telemetry()
    want = _token_digest(opts.token) if opts.token else None

    def authorized(request: Request) -> bool:
        if want is None:
            return True
        auth = request.headers.get("authorization", "")
        scheme, _, given = auth.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(_token_digest(given.strip()), want)

    def error(path: str, status: int, body: dict[str, Any], version: str | None = None) -> Response:
        tel.http.inc(path, str(status))
        tel.errors.inc(path, str(status))
        if version is not None:
            tel.predict.inc(version, str(status))
        headers = {"WWW-Authenticate": 'Bearer realm="automl"'} if status == 401 else None
        return JSONResponse(body, status_code=status, headers=headers)

    def unauthorized(path: str) -> Response:
        return error(path, 401, {"error": "missing or invalid bearer token",
                                 "fix": "Send the header 'Authorization: Bearer <token>'."})

    async def read_body(request: Request) -> bytes | None:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > opts.max_body_bytes:
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > opts.max_body_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def score(body: bytes, ctype: str, accept: str, variant: Variant) -> tuple[bytes, str, int]:
        model = variant.model
        if "csv" in ctype:
            feeds = feeds_from_csv(body, model)
        else:
            feeds = feeds_from_records(records_from_json(body), model)
        if not opts.allow_unseen:
            check_categories(feeds, model)
        out = dict(zip(model.output_names, model.session.run(None, feeds), strict=True))
        labels = np.asarray(out["label"]).reshape(-1)
        n = len(labels)
        variant.remember(n, feeds, opts.drift_window)
        proba = np.asarray(out["probabilities"]) if model.classes is not None else None
        if "text/csv" in accept:
            import io

            import pandas as pd

            frame = pd.DataFrame({"prediction": labels})
            if proba is not None:
                for j, c in enumerate(model.classes or []):
                    frame[f"proba_{c}"] = proba[:, j]
            for col, values in conformal_columns(out, model.classes).items():
                frame[col] = values
            buf = io.StringIO()
            frame.to_csv(buf, index=False)
            return buf.getvalue().encode(), "text/csv", n
        doc: dict[str, Any] = {"model": model.label, "predictions": labels.tolist()}
        if proba is not None:
            doc["classes"] = model.classes
            doc["probabilities"] = proba.tolist()
        if "interval" in out:
            doc["intervals"] = np.asarray(out["interval"]).tolist()
        if "prediction_set" in out and model.classes is not None:
            doc["prediction_sets"] = [[c for c, inside in zip(model.classes, row, strict=True) if inside]
                                      for row in np.asarray(out["prediction_set"], dtype=bool).tolist()]
        return json.dumps(doc).encode(), "application/json", n

    async def predict(request: Request) -> Response:
        t0 = time.perf_counter()
        if not authorized(request):
            return unauthorized("/predict")
        body = await read_body(request)
        if body is None:
            return error("/predict", 413, {"error": f"the request body exceeds {opts.max_body_bytes} bytes",
                                           "fix": "Split the rows over several requests."})
        variant = models.choose(request.headers.get("x-routing-key"))
        label = variant.model.label
        args = (body, request.headers.get("content-type", ""), request.headers.get("accept", ""), variant)
        try:
            payload, media, n = (score(*args) if len(body) <= INLINE_BYTES else await run_in_threadpool(score, *args))
        except RequestError as e:
            return error("/predict", e.status, e.body(), label)
        except Exception as e:  # onnxruntime failure: log the type, never the request
            log.error("scoring failed on %s: %s", label, type(e).__name__)
            return error("/predict", 500, {"error": f"scoring failed ({type(e).__name__})"}, label)
        tel.http.inc("/predict", "200")
        tel.predict.inc(label, "200")
        tel.rows.inc(label, by=n)
        tel.latency.observe(time.perf_counter() - t0, label)
        return Response(payload, media_type=media, headers={"X-Model-Version": label})

    async def health(request: Request) -> Response:
        tel.http.inc("/health", "200")
        return JSONResponse({"status": "ok", "models": [
            {"version": v.model.label, "ref": v.ref, "sha256": v.model.sha256, "weight": v.weight}
            for v in models.variants]})

    def schema_doc(model: LoadedModel) -> dict[str, Any]:
        return {"model": model.label, "sha256": model.sha256, "task": model.task, "target": model.target,
                "inputs": model.schema, "categories": {c: sorted(v) for c, v in model.categories.items()},
                "classes": model.classes,
                "outputs": ["predictions"] + (["probabilities"] if model.classes is not None else [])
                + (["intervals"] if "interval" in model.output_names else [])
                + (["prediction_sets"] if "prediction_set" in model.output_names else []),
                "unseen_categories": "allowed" if opts.allow_unseen else "rejected (422)"}

    async def schema(request: Request) -> Response:
        if not authorized(request):
            return unauthorized("/schema")
        tel.http.inc("/schema", "200")
        doc = schema_doc(models.variants[0].model)
        if len(models.variants) > 1:
            doc["variants"] = [{"weight": v.weight, **schema_doc(v.model)} for v in models.variants]
        return JSONResponse(doc)

    def drift_metrics() -> list[Any]:
        rows = Gauge("automl_drift_window_rows", "Rows in the rolling input window used for drift", ("version",))
        psi = Gauge("automl_feature_drift_psi", "Population stability index of the window vs training",
                    ("version", "feature"))
        js = Gauge("automl_feature_drift_js_distance", "Jensen-Shannon distance (base 2) of the window vs training",
                   ("version", "feature"))
        pv = Gauge("automl_feature_drift_p_value",
                   "Chi-square p-value: window and training bins share one distribution",
                   ("version", "feature"))
        flag = Gauge("automl_feature_drift", "1 when the feature is flagged as drifted (see automl drift)",
                     ("version", "feature"))
        info = Gauge("automl_model_info", "Served model versions (value: traffic weight)",
                     ("version", "sha256", "task"))

        for v in models.variants:
            m = v.model
            info.set(m.label, m.sha256, m.task, value=v.weight)
            if m.reference is None:
                continue
            n, feeds = v.window_feeds(opts.drift_window)
            rows.set(m.label, value=n)
            if n < opts.drift_min_rows:
                continue
            for r in compare(m.reference, feeds, opts.thresholds):
                psi.set(m.label, r.name, value=r.psi)
                js.set(m.label, r.name, value=r.js_distance)
                pv.set(m.label, r.name, value=r.p_value)
                flag.set(m.label, r.name, value=float(r.drifted))
        return [info, rows, psi, js, pv, flag]

    async def metrics(request: Request) -> Response:
        if not authorized(request):
            return unauthorized("/metrics")
        tel.http.inc("/metrics", "200")
        extra = await run_in_threadpool(drift_metrics)
        return PlainTextResponse(render([*tel.all(), *extra]), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def reload_loop() -> None:
        while True:
            await asyncio.sleep(opts.reload_s)
            for v in models.variants:
                if v.registry_root is None:
                    continue
                name = v.ref.partition("@")[0]
                try:
                    mtime = (v.registry_root / name / INDEX).stat().st_mtime
                    if mtime == v.index_mtime:
                        continue
                    v.index_mtime = mtime
                    r = resolve(v.ref, v.registry_root)
                    if r.label == v.model.label and r.sha256 == v.model.sha256:
                        continue
                    await run_in_threadpool(r.verify_files, v.ref)
                    new = await run_in_threadpool(load_model, r.root, r.label, v.ref, r.sha256, opts.threads)
                except Exception as e:  # keep serving the loaded version
                    tel.reloads.inc(v.ref, "failed")
                    log.error("reload of %s failed, still serving %s: %s", v.ref, v.model.label, e)
                    continue
                with v.lock:
                    v.model, v.window, v.window_rows = new, deque(), 0
                tel.reloads.inc(v.ref, "swapped")
                log.warning("%s now serves %s (sha256 %s)", v.ref, new.label, new.sha256[:12])

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        task = None
        if opts.reload_s > 0 and any(v.registry_root is not None for v in models.variants):
            task = asyncio.create_task(reload_loop())
        yield
        if task is not None:
            task.cancel()

    routes = [Route("/predict", predict, methods=["POST"]), Route("/health", health, methods=["GET"]),
              Route("/schema", schema, methods=["GET"]), Route("/metrics", metrics, methods=["GET"])]
    return Starlette(routes=routes, lifespan=lifespan)
