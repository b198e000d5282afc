"""Data larger than the memory budget: build a large CSV and Parquet from a real dataset, run the engine
under budget.memory_mb = a fifth of the data's in-memory size, and score the whole file with
`automl predict`, measuring memory from outside.

    nice -n 10 python benchmarks/large_data.py build --rows 50000000       # /tmp/bigdata/german_big.{csv,parquet}
    nice -n 10 python benchmarks/large_data.py run --time 120              # engine on the CSV
    nice -n 10 python benchmarks/large_data.py predict                     # predict over CSV and Parquet

Rows are resampled from ../shared/datasets/german_health.csv (19,609 rows, binary target `outwork`;
edlevel, female and married written as text labels) with small noise: household income x (1 + N(0, 0.02)), age +/- 1 year with probability 0.3, so the
file is not 2,000 copies of the same rows. Files are written in chunks (constant memory).

Memory is measured two ways, both from outside the engine:
- `/usr/bin/time -v`: "Maximum resident set size" is getrusage(RUSAGE_CHILDREN).ru_maxrss, the peak RSS of
  the largest single process in the tree (the driver or one trial), not their sum.
- a sampler in this script polls the engine's process tree every 0.2 s and sums RSS over the driver and
  all its children (an upper bound: pages a forked trial shares copy-on-write with the driver count
  twice) and PSS (shared pages split between the processes that share them: the fair sum).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SRC = ROOT.parent / "shared" / "datasets" / "german_health.csv"
OUT = Path("/tmp/bigdata")
CSV, PARQUET = OUT / "german_big.csv", OUT / "german_big.parquet"
FACTS = OUT / "facts.json"


def _facts() -> dict:
    return json.loads(FACTS.read_text()) if FACTS.exists() else {}


def _save(**kw: object) -> None:
    f = _facts()
    f.update(kw)
    FACTS.write_text(json.dumps(f, indent=1))


def _with_labels(df):
    """Three coded columns as the text labels a real extract carries (they also make the frame's pandas
    size what string data costs: a Python object per value)."""
    df = df.copy()
    df["edlevel"] = df["edlevel"].map({1: "no_degree", 2: "vocational", 3: "abitur", 4: "university"})
    df["female"] = df["female"].map({0: "male", 1: "female"})
    df["married"] = df["married"].map({0: "single", 1: "married"})
    return df


def build(rows: int, chunk: int = 1_000_000, seed: int = 0) -> None:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    OUT.mkdir(parents=True, exist_ok=True)
    base = _with_labels(pd.read_csv(SRC))
    rng = np.random.default_rng(seed)
    t0 = time.time()
    csv_w = pq_w = None
    done = 0
    while done < rows:
        n = min(chunk, rows - done)
        df = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
        df["hhninc"] = np.round(df["hhninc"] * (1 + rng.normal(0, 0.02, n)), 4)
        df["age"] = df["age"] + rng.integers(-1, 2, n) * (rng.random(n) < 0.3)
        table = pa.Table.from_pandas(df, preserve_index=False)
        csv_w = csv_w or pcsv.CSVWriter(str(CSV), table.schema)
        pq_w = pq_w or pq.ParquetWriter(str(PARQUET), table.schema, compression="snappy")
        csv_w.write_table(table)
        pq_w.write_table(table, row_group_size=256_000)
        done += n
    csv_w.close()
    pq_w.close()
    in_mem = base.memory_usage(deep=True).sum() / len(base) * rows  # pandas bytes per row x rows
    _save(
        rows=rows,
        csv_bytes=CSV.stat().st_size,
        parquet_bytes=PARQUET.stat().st_size,
        in_memory_mb=round(in_mem / 2**20, 1),
        build_s=round(time.time() - t0, 1),
    )
    print(json.dumps(_facts(), indent=1))


class TreeSampler(threading.Thread):
    """Peak of RSS and PSS summed over a process and all its descendants, polled; and a timeline of the
    root's RSS against the progress the process logs ("scored N rows", read from its log file)."""

    def __init__(self, pid: int, every: float = 0.2, log: Path | None = None) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.log = pid, every, log
        self.peak_rss = self.peak_pss = 0.0
        self.peak_procs = 0
        self.timeline: list[tuple[float, int, float]] = []  # (seconds, rows done, root RSS MB)
        self.stop = threading.Event()

    def _rows_done(self) -> int:
        if self.log is None:
            return 0
        hits = re.findall(r"scored (\d+) rows", self.log.read_text(errors="replace")[-4000:])
        return int(hits[-1]) if hits else 0

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self.stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            rss = pss = 0.0
            for p in procs:
                try:
                    mi = p.memory_full_info()
                    rss += mi.rss
                    pss += mi.pss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            try:
                self.timeline.append((time.time(), self._rows_done(), root.memory_info().rss / 2**20))
            except psutil.NoSuchProcess:
                pass
            self.peak_rss = max(self.peak_rss, rss / 2**20)
            self.peak_pss = max(self.peak_pss, pss / 2**20)
            self.peak_procs = max(self.peak_procs, len(procs))
            time.sleep(self.every)


def measured(cmd: list[str], log: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.time()
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            ["/usr/bin/time", "-v", *cmd], stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )
        time.sleep(0.3)
        import psutil

        kids = psutil.Process(proc.pid).children()  # /usr/bin/time's child is the engine
        sampler = TreeSampler(kids[0].pid if kids else proc.pid, log=log)
        sampler.start()
        code = proc.wait()
        sampler.stop.set()
        sampler.join()
    text = log.read_text()
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    measured.timeline = sampler.timeline  # type: ignore[attr-defined]
    return {
        "exit_code": code,
        "wall_s": round(time.time() - t0, 1),
        "time_v_max_rss_mb": round(int(m.group(1)) / 1024, 1) if m else None,
        "tree_peak_rss_sum_mb": round(sampler.peak_rss, 1),
        "tree_peak_pss_sum_mb": round(sampler.peak_pss, 1),
        "max_processes": sampler.peak_procs,
    }


def run(time_s: float, data: Path) -> None:
    f = _facts()
    memory_mb = int(f["in_memory_mb"] / 5)
    run_dir = OUT / ("run" if data.suffix == ".csv" else f"run_{data.suffix.lstrip('.')}")
    subprocess.run(["rm", "-rf", str(run_dir)], check=True)
    cmd = [
        sys.executable,
        "-m",
        "automl",
        f"data.path={data}",
        "task.target=outwork",
        f"budget.time_s={time_s}",
        f"budget.memory_mb={memory_mb}",
        f"hydra.run.dir={run_dir}",
    ]
    res = measured(cmd, OUT / f"{run_dir.name}.log")
    man = json.loads((run_dir / "manifest.json").read_text()) if (run_dir / "manifest.json").exists() else {}
    s = man.get("sampling", {})
    res.update(
        memory_mb=memory_mb,
        time_s=time_s,
        status=man.get("status"),
        used_s=man.get("budget", {}).get("used_s"),
        trial_memory_mb=man.get("budget", {}).get("trial_memory_mb"),
        sampling={
            k: s.get(k)
            for k in (
                "rows_total",
                "memory_sample_rows",
                "search_sample_rows",
                "search_sample_reason",
                "final_sample_rows",
                "final_sample_reason",
                "fit_time_model",
                "holdout_rows",
                "final_model_rows",
                "scan_s",
                "estimated_memory_mb",
                "data_allowance_mb",
            )
        },
        learning_curve=s.get("learning_curve"),
        holdout=man.get("final", {}).get("holdout_score"),
        family=man.get("final", {}).get("family"),
        completed=man.get("search", {}).get("completed"),
        failed=man.get("search", {}).get("failed"),
        timings=man.get("timings"),
        uptime=subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
    )
    _save(**{"run" if data.suffix == ".csv" else f"run_{data.suffix.lstrip('.')}": res})
    print(json.dumps(res, indent=1))


def rss_by_progress(timeline: list[tuple[float, int, float]], rows: int) -> dict[str, Any]:
    """The driver's RSS when 10%, 50% and all rows were scored, the highest RSS over the whole run, and
    the growth from the 10% mark to the end (flat memory: ~0)."""
    out: dict[str, Any] = {}
    for share in (0.1, 0.5, 1.0):
        hit = [r for _, done, r in timeline if done >= share * rows]
        if hit:
            out[f"{share:.0%}"] = round(hit[0], 1)
    for step in range(5, 100, 5):  # a coarse timeline: RSS when each further 5% of the rows was scored
        hit = [r for _, done, r in timeline if done >= step / 100 * rows]
        if hit:
            out.setdefault("every_5pct", []).append(round(hit[0], 1))
    if timeline:
        out["max"] = round(max(r for *_, r in timeline), 1)
        if "10%" in out:
            after = [r for _, done, r in timeline if done >= 0.1 * rows]
            out["growth_after_10pct_pct"] = round(100 * (max(after) - out["10%"]) / out["10%"], 1)
    return out


def predict(chunk_rows: int, model: Path) -> None:
    out = {}
    for name, data, dest in (
        ("parquet", PARQUET, OUT / "pred_from_parquet.parquet"),
        ("csv", CSV, OUT / "pred_from_csv.parquet"),
    ):
        cmd = [
            sys.executable,
            "-m",
            "automl",
            "predict",
            "--model",
            str(model),
            "--data",
            str(data),
            "--out",
            str(dest),
            "--chunk-rows",
            str(chunk_rows),
        ]
        res = measured(cmd, OUT / f"predict_{name}.log")
        rows = _facts()["rows"]
        res.update(
            model=str(model),
            rows=rows,
            rows_per_s=round(rows / res["wall_s"]),
            out_bytes=dest.stat().st_size if dest.exists() else 0,
            rss_at=rss_by_progress(measured.timeline, rows),  # type: ignore[attr-defined]
        )
        out[name] = res
        print(name, json.dumps(res, indent=1))
    _save(predict=out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("step", choices=["build", "run", "predict"])
    ap.add_argument("--rows", type=int, default=50_000_000)
    ap.add_argument("--time", type=float, default=120.0)
    ap.add_argument("--data", default=str(CSV))
    ap.add_argument("--chunk-rows", type=int, default=100_000)
    ap.add_argument("--model", default=str(OUT / "run"), help="predict: the run folder whose model.onnx scores")
    a = ap.parse_args()
    if a.step == "build":
        build(a.rows)
    elif a.step == "run":
        run(a.time, Path(a.data))
    else:
        predict(a.chunk_rows, Path(a.model))


if __name__ == "__main__":
    main()
