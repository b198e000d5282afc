"""Trials per minute with 1 vs N local workers on one dataset, same budget, measured side by side.

    python benchmarks/workers.py --dataset medpar --time-s 60 --workers 1 2 --repeats 1

Runs `automl` once per (repeat, worker count), alternating the order so that drifting machine load hits
both settings alike, and reads each run's manifest: trials finished during the search phase, search
seconds, trials per minute, the holdout score. Numbers depend on the machine's load; say so when quoting.
Results are appended to benchmarks/results/workers.jsonl and printed as a table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "datasets"


def run_one(dataset: dict, path: Path, workers: int, time_s: float, seed: int, out: Path, storage: str) -> dict:
    run_dir = out / f"{dataset['name']}_w{workers}_s{seed}_{int(time.time())}"
    args = [sys.executable, "-m", "automl", f"data.path={path}", f"task.target={dataset['target']}",
            f"budget.time_s={time_s}", f"search.n_workers={workers}", f"seed={seed}", f"hydra.run.dir={run_dir}"]
    if storage:
        args += [f"search.storage={storage}", f"search.study_name=bench_{run_dir.name}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t = time.time()
    p = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.time() - t
    m = json.loads((run_dir / "manifest.json").read_text()) if (run_dir / "manifest.json").exists() else {}
    s = m.get("search", {})
    search_s = m.get("timings", {}).get("search_s") or float("nan")
    return {"dataset": dataset["name"], "workers": workers, "seed": seed, "time_s": time_s,
            "storage": storage.split("://")[0] if storage else "journal", "exit": p.returncode,
            "trials": s.get("trials_total"), "completed": s.get("completed"), "failed": s.get("failed"),
            "pruned": s.get("pruned"), "search_s": round(search_s, 1),
            "trials_per_min": round(60 * (s.get("trials_total") or 0) / search_s, 2),
            "completed_per_min": round(60 * (s.get("completed") or 0) / search_s, 2),
            "holdout": (m.get("final") or {}).get("holdout_score"), "wall_s": round(wall, 1),
            "load_avg_1m": round(os.getloadavg()[0], 2), "run_dir": str(run_dir),
            "at": time.strftime("%Y-%m-%dT%H:%M:%S")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="medpar", help="a name from ../shared/datasets/datasets.yaml")
    ap.add_argument("--time-s", type=float, default=60)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--storage", default="", help="a database URL instead of the run folder's journal")
    ap.add_argument("--out", default="/tmp/automl_bench_workers")
    a = ap.parse_args()
    meta = {d["name"]: d for d in yaml.safe_load((SHARED / "datasets.yaml").read_text())["datasets"]}
    ds = meta[a.dataset]
    rows = []
    for r in range(a.repeats):
        order = a.workers if r % 2 == 0 else list(reversed(a.workers))
        for w in order:
            row = run_one(ds, SHARED / ds["file"], w, a.time_s, r, Path(a.out), a.storage)
            rows.append(row)
            print(json.dumps(row), flush=True)
    res = ROOT / "benchmarks" / "results" / "workers.jsonl"
    res.parent.mkdir(exist_ok=True)
    with res.open("a") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    print(f"\n{'workers':>7} {'trials':>6} {'complete':>8} {'search_s':>8} {'trials/min':>10} {'holdout':>8} {'load':>5}")
    for row in sorted(rows, key=lambda x: (x["workers"], x["seed"])):
        print(f"{row['workers']:>7} {row['trials']!s:>6} {row['completed']!s:>8} {row['search_s']:>8} "
              f"{row['trials_per_min']:>10} {row['holdout'] if row['holdout'] is None else round(row['holdout'], 4)!s:>8} "
              f"{row['load_avg_1m']:>5}")


if __name__ == "__main__":
    main()
