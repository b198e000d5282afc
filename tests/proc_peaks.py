"""Memory measured from outside a process tree, and a CSV larger than a memory budget.

`TreePeaks` polls the resident set (RSS) of every process of a tree, each on its own, and keeps each
pid's peak: what `/usr/bin/time -v` reports for the largest process, but for every process, the
forked trials included. RSS counts the pages a forked trial still shares with the driver, so a
trial's figure is what the operating system would charge it, not only what it added.

It also sums the tree's anonymous memory at each poll (Pss_Anon of every process: a page shared
copy-on-write by k processes counts 1/k in each, so the sum counts it once) and keeps the largest sum:
what a container's memory limit sees of the tree once file pages are reclaimed, without needing a cgroup.

`write_big_csv` resamples a public dataset's rows with noise to any size on disk (in chunks: its own
memory stays flat), so the tests and benchmarks/memory_budget.py need no large file committed.
"""
from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

DOCTOR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "doctor_contacts.csv"
DOCTOR_LOCAL = Path(__file__).resolve().parent / "data" / "doctor_contacts_2000.csv"


class TreePeaks(threading.Thread):
    """Peak RSS (MB) of each process of the tree under `pid`, polled every `every` seconds."""

    def __init__(self, pid: int, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peaks: dict[int, float] = {}
        self.names: dict[int, str] = {}
        self.samples = 0
        self.tree_anon_mb = 0.0
        self.tree_anon_at: dict[str, float] = {}  # each process's Pss_Anon at the tree's peak
        self._stop_event = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop_event.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            anon: dict[str, float] = {}
            for p in procs:
                try:
                    mb = p.memory_info().rss / 2**20
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                if mb > self.peaks.get(p.pid, 0.0):
                    self.peaks[p.pid] = mb
                    self.names.setdefault(p.pid, "driver" if p.pid == self.pid else "child")
                anon[f"{'driver' if p.pid == self.pid else 'child'} {p.pid}"] = pss_anon_mb(p.pid)
            if sum(anon.values()) > self.tree_anon_mb:
                self.tree_anon_mb, self.tree_anon_at = sum(anon.values()), anon
            self.samples += 1
            time.sleep(self.every)

    def finish(self) -> dict[str, Any]:
        self._stop_event.set()
        self.join()
        kids = sorted((mb for pid, mb in self.peaks.items() if pid != self.pid), reverse=True)
        return {"driver_mb": round(self.peaks.get(self.pid, 0.0), 1),
                "max_child_mb": round(kids[0], 1) if kids else 0.0,
                "children": len(kids), "max_process_mb": round(max(self.peaks.values(), default=0.0), 1),
                "tree_anon_mb": round(self.tree_anon_mb, 1),
                "tree_anon_at_peak": {k: round(v, 1) for k, v in self.tree_anon_at.items() if v >= 1.0},
                "samples": self.samples}


def pss_anon_mb(pid: int) -> float:
    """The process's proportional share of its anonymous pages (MB); 0 once it has exited."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss_Anon:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def watched_run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: float, every: float = 0.05,
                preexec_fn: Callable[[], None] | None = None) -> tuple[subprocess.CompletedProcess, dict[str, Any]]:
    """Run `cmd`, polling its process tree; (the finished process, its peaks). `preexec_fn` runs in the child
    before the command (benchmarks/memory_budget.py joins a memory cgroup there)."""
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=preexec_fn)
    peaks = TreePeaks(proc.pid, every)
    peaks.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        result = peaks.finish()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), result


def write_big_csv(path: Path, target_mb: float, seed: int = 0, chunk: int = 500_000,
                  high_cardinality: bool = False) -> int:
    """A CSV of about `target_mb` MB on disk: doctor_contacts rows (regression target `mdu`) drawn with
    replacement, with noise on the continuous columns so rows are not copies. `high_cardinality` adds two
    string columns that shift the target: `provider` (ids drawn Zipf-like from 200,000 levels) and `region`
    (5,000 levels, uniform). Returns the rows written."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pcsv

    base = pd.read_csv(DOCTOR if DOCTOR.exists() else DOCTOR_LOCAL)
    rng = np.random.default_rng(seed)
    if high_cardinality:  # drawn only then: the plain file's rows stay those of its seed
        provider_shift, region_shift = rng.normal(0, 1.0, 200_000), rng.normal(0, 0.5, 5_000)
    target = int(target_mb * 2**20)
    sink = pa.OSFile(str(path), "wb")
    writer = None
    done = 0
    while sink.tell() < target:
        n = chunk
        df = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
        df["linc"] = np.round(df["linc"] * (1 + rng.normal(0, 0.02, n)), 4)
        df["age"] = np.round(df["age"] + rng.normal(0, 0.5, n), 3)
        df["lpi"] = np.round(df["lpi"] + rng.normal(0, 0.05, n), 4)
        if high_cardinality:
            p, r = rng.zipf(1.3, n) % len(provider_shift), rng.integers(0, len(region_shift), n)
            df["provider"] = np.char.add("prov_", np.char.zfill(p.astype(str), 6))
            df["region"] = np.char.add("region-", np.char.zfill(r.astype(str), 4))
            df["mdu"] = np.maximum(0, np.round(df["mdu"] + provider_shift[p] + region_shift[r])).astype(int)
        table = pa.Table.from_pandas(df, preserve_index=False)
        if writer is None:
            writer = pcsv.CSVWriter(sink, table.schema)
        left = target - sink.tell()  # the last chunk only as long as needed (rows cost about the same)
        if done and left < sink.tell() / done * n:
            table = table.slice(0, max(int(left / (sink.tell() / done)) + 1, 1))
        writer.write_table(table)
        done += table.num_rows
    assert writer is not None
    writer.close()
    sink.close()
    return done
