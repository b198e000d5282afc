"""Latency and throughput of `automl serve` for a 200-tree model, end to end over HTTP on loopback.

1. Trains a random forest with exactly 200 trees through the real CLI (a copy of search_spaces/ with
   n_estimators fixed at 200, estimators.include=[random_forest], one trial).
2. Starts the real server (`python -m automl serve`, bearer token, one onnxruntime thread).
3. Single-row requests: one keep-alive client, sequential, wall time per request measured on the
   client (request written to response read): median, p90, p99, max.
4. Batch throughput: sequential requests of --batch-rows rows (JSON and CSV), rows per second.

    python benchmarks/serve_latency.py                       # ../shared/datasets/german_health.csv
    python benchmarks/serve_latency.py --data tests/data/medpar_600.csv --target died
    python benchmarks/serve_latency.py --write-results       # also update the section in RESULTS.md
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "german_health.csv"
START, END = "<!-- serve_latency:start -->", "<!-- serve_latency:end -->"


def train(data: Path, target: str, trees: int, out: Path, env: dict[str, str]) -> Path:
    spaces = out / "spaces"
    shutil.copytree(ROOT / "search_spaces", spaces)
    rf = spaces / "random_forest.yaml"
    text = re.sub(r"^n_estimators:.*$", f"n_estimators: {{type: categorical, choices: [{trees}], default: {trees}}}",
                  rf.read_text(), flags=re.M)
    rf.write_text(text)
    run = out / "run"
    cmd = [sys.executable, "-m", "automl", f"data.path={data}", f"task.target={target}", "budget.time_s=120",
           "budget.n_trials=1", "estimators.include=[random_forest]", f"search.space_dir={spaces}",
           f"hydra.run.dir={run}"]
    print("training:", " ".join(cmd[2:]), flush=True)
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"training failed:\n{p.stderr[-3000:]}")
    return run


def count_trees(model: Path) -> tuple[int, int]:
    import onnx

    m = onnx.load_from_string(model.read_bytes())
    trees, nodes = 0, 0
    for n in m.graph.node:
        if n.op_type.startswith("TreeEnsemble"):
            for a in n.attribute:
                if a.name == "nodes_treeids":
                    trees += len(set(a.ints))
                    nodes += len(a.ints)
    return trees, nodes


def onnxruntime_alone(run: Path, df: pd.DataFrame) -> float:
    """Median in-process onnxruntime time for one row (what HTTP, JSON and validation add to)."""
    import onnxruntime as ort

    from automl.export.contract import feeds_from_frame, input_schema

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    sess = ort.InferenceSession((run / "model.onnx").read_bytes(), opts, providers=["CPUExecutionProvider"])
    schema = input_schema(sess.get_modelmeta().custom_metadata_map)
    feeds = [feeds_from_frame(df.iloc[[i]], schema) for i in range(200)]
    for f in feeds:
        sess.run(None, f)
    times = []
    for _ in range(5):
        for f in feeds:
            t0 = time.perf_counter()
            sess.run(None, f)
            times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(conn: http.client.HTTPConnection, body: bytes, headers: dict[str, str]) -> bytes:
    conn.request("POST", "/predict", body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {data[:300]!r}")
    return data


def records(df: pd.DataFrame) -> list[dict]:
    df = df.astype(object).where(df.notna(), None)
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in df.to_dict("records")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--target", default="outwork")
    ap.add_argument("--trees", type=int, default=200)
    ap.add_argument("--requests", type=int, default=3000, help="single-row requests measured")
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--batch-rows", type=int, default=1000)
    ap.add_argument("--batches", type=int, default=30)
    ap.add_argument("--run", default=None, help="reuse this run folder instead of training")
    ap.add_argument("--write-results", action="store_true", help="update the section in benchmarks/RESULTS.md")
    a = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    work = Path(tempfile.mkdtemp(prefix="serve_latency_"))
    run = Path(a.run) if a.run else train(Path(a.data), a.target, a.trees, work, env)
    trees, nodes = count_trees(run / "model.onnx")
    size_mb = (run / "model.onnx").stat().st_size / 2**20
    print(f"model: {run / 'model.onnx'}: {trees} trees, {nodes} nodes, {size_mb:.1f} MB", flush=True)

    ort_ms = onnxruntime_alone(run, pd.read_csv(a.data).drop(columns=[a.target]))
    print(f"onnxruntime alone (in process, 1 thread): single row median {ort_ms:.3f} ms", flush=True)
    token = os.urandom(24).hex()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "automl", "serve", "--model", str(run), "--port", str(port)],
                              env={**env, "AUTOML_SERVE_TOKEN": token}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"server did not start: {server.stdout.read() if server.stdout else ''}")
                time.sleep(0.1)
        df = pd.read_csv(a.data).drop(columns=[a.target])
        rows = records(df.sample(n=min(len(df), 2000), random_state=0))
        bodies = [json.dumps([r]).encode() for r in rows]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in range(a.warmup):
            post(conn, bodies[i % len(bodies)], headers)
        lat = []
        load_before = os.getloadavg()
        t_all = time.perf_counter()
        for i in range(a.requests):
            t0 = time.perf_counter()
            post(conn, bodies[i % len(bodies)], headers)
            lat.append(time.perf_counter() - t0)
        single_s = time.perf_counter() - t_all
        load_after = os.getloadavg()
        ms = np.array(lat) * 1e3
        single = {"requests": a.requests, "median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
                  "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()), "mean_ms": float(ms.mean()),
                  "requests_per_s": a.requests / single_s}

        big = df.sample(n=a.batch_rows, replace=len(df) < a.batch_rows, random_state=1)
        batch = {}
        for kind, body, ctype in (("json", json.dumps(records(big)).encode(), "application/json"),
                                  ("csv", big.to_csv(index=False).encode(), "text/csv")):
            h = {**headers, "Content-Type": ctype}
            post(conn, body, h)
            times = []
            for _ in range(a.batches):
                t0 = time.perf_counter()
                post(conn, body, h)
                times.append(time.perf_counter() - t0)
            batch[kind] = {"rows_per_request": a.batch_rows, "requests": a.batches,
                           "median_request_ms": statistics.median(times) * 1e3,
                           "rows_per_s": a.batch_rows * a.batches / sum(times), "body_kb": len(body) / 1024}
        conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
        metrics = conn.getresponse().read().decode()
    finally:
        server.terminate()
        server.wait(timeout=15)
        shutil.rmtree(work, ignore_errors=True)
    errors = sum(float(ln.rsplit(" ", 1)[1]) for ln in metrics.splitlines() if ln.startswith("automl_http_errors_total{"))
    result = {"onnxruntime_alone_median_ms": ort_ms, "model": {"trees": trees, "nodes": nodes, "size_mb": round(size_mb, 2), "data": Path(a.data).name},
              "single_row": single, "batch": batch, "errors": errors, "loadavg_1m": [load_before[0], load_after[0]],
              "cpus": os.cpu_count()}
    print(json.dumps(result, indent=2))
    ok = single["median_ms"] < 2 and single["p99_ms"] < 10
    print(f"single row: median {single['median_ms']:.3f} ms, p99 {single['p99_ms']:.3f} ms "
          f"(targets < 2 ms, < 10 ms: {'met' if ok else 'NOT met'}); batch JSON {batch['json']['rows_per_s']:,.0f} rows/s, "
          f"CSV {batch['csv']['rows_per_s']:,.0f} rows/s; {errors:.0f} errors")
    if a.write_results:
        write_results(result, a)


def write_results(r: dict, a: argparse.Namespace) -> None:
    s, b, m = r["single_row"], r["batch"], r["model"]
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    section = f"""{START}
## Serving latency (`automl serve`, issue 7)

`python benchmarks/serve_latency.py --write-results` at commit {sha}: a random forest of {m['trees']} trees
({m['nodes']:,} nodes, {m['size_mb']} MB ONNX) trained by the CLI on {m['data']}, served by the real server
(uvicorn + Starlette, bearer token, schema validation, drift window on, one onnxruntime thread) on loopback;
one keep-alive client, sequential requests, time measured on the client from request to response read.

| measure | value | target |
|---|---|---|
| single row, median | {s['median_ms']:.3f} ms | < 2 ms |
| (onnxruntime alone, in process, one row, median) | {r['onnxruntime_alone_median_ms']:.3f} ms | |
| single row, p90 | {s['p90_ms']:.3f} ms | |
| single row, p99 | {s['p99_ms']:.3f} ms | < 10 ms |
| single row, max | {s['max_ms']:.3f} ms | |
| single row, requests/s (1 client) | {s['requests_per_s']:,.0f} | |
| batch of {b['json']['rows_per_request']} rows, JSON ({b['json']['body_kb']:.0f} KB) | {b['json']['rows_per_s']:,.0f} rows/s (median {b['json']['median_request_ms']:.1f} ms/request) | |
| batch of {b['csv']['rows_per_request']} rows, CSV ({b['csv']['body_kb']:.0f} KB) | {b['csv']['rows_per_s']:,.0f} rows/s (median {b['csv']['median_request_ms']:.1f} ms/request) | |
| error responses during the run | {r['errors']:.0f} | 0 |

{s['requests']} measured single-row requests after {a.warmup} warm-up requests; {b['json']['requests']} batch requests each.
The machine ({r['cpus']} cores) was shared with other jobs: 1-minute load average {r['loadavg_1m'][0]:.1f} before
and {r['loadavg_1m'][1]:.1f} after the single-row phase, so tail figures are noisy.
{END}"""
    path = HERE / "RESULTS.md"
    text = path.read_text() if path.exists() else ""
    if START in text and END in text:
        text = text[:text.index(START)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
    print(f"updated {path}")


if __name__ == "__main__":
    main()
