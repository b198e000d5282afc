"""Where a run's process tree holds its memory: run a command in a memory cgroup of its own and report

- the group's anonymous memory and the command's own RssAnon (the driver's) every 2 s,
- at the group's anonymous peak, every process in it with its USS (pages it alone maps),
- for every process whose USS passed --detail-mb, at its largest, its private dirty pages by mapping
  (anonymous mappings labelled with their size, so one allocator's reservation stands out),
- the processes with the largest RSS (what GNU time's maximum resident set size reports for the largest
  one), with when each was first and last seen.

    python benchmarks/tree_breakdown.py [--detail-mb 30] [--json OUT.json] COMMAND ARG...

e.g. `python benchmarks/tree_breakdown.py automl data.path=split.csv task.target=y budget.time_s=60`. Polls
every 50 ms (detail every 0.3 s); needs root (cgroup_peak.MemoryGroup). benchmarks/RESULTS.md, session 46.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cgroup_peak import MemoryGroup, stat_bytes

_MAPPING = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) ")


def rss_anon_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def private_dirty_by_mapping(pid: int) -> dict[str, float]:
    """MB of Private_Dirty per mapping: files by name, anonymous mappings as `[anon SIZE MB]`."""
    out: dict[str, float] = {}
    name = "?"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        m = _MAPPING.match(line)
        if m:
            parts = line.split()
            name = parts[5].rsplit("/", 1)[-1] if len(parts) > 5 else \
                f"[anon {(int(m.group(2), 16) - int(m.group(1), 16)) >> 20} MB]"
        elif line.startswith("Private_Dirty:"):
            out[name] = out.get(name, 0.0) + int(line.split()[1]) / 1024
    return out


def measure(cmd: list[str], detail_mb: float) -> dict[str, Any]:
    with MemoryGroup() as g:
        p = subprocess.Popen(cmd, preexec_fn=g.join, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0 = time.time()
        peak: dict[str, Any] = {"anon_mb": 0.0}
        timeline: list[tuple[float, float, int, float | None]] = []
        detail: dict[int, dict[str, Any]] = {}
        rss: dict[int, dict[str, float]] = {}
        last_detail = 0.0
        while p.poll() is None:
            t = time.time() - t0
            anon = stat_bytes(g.path, g.anon_key) / 2**20
            pids = [int(x) for x in (g.path / "cgroup.procs").read_text().split()]
            if anon > peak["anon_mb"]:
                procs = []
                for pid in pids:
                    try:
                        q = psutil.Process(pid)
                        procs.append({"pid": pid, "uss_mb": round(q.memory_full_info().uss / 2**20, 1),
                                      "born_s": round(q.create_time() - t0, 1)})
                    except psutil.Error:
                        pass
                peak = {"anon_mb": round(anon, 1), "at_s": round(t, 1), "processes": procs}
            if not timeline or t - timeline[-1][0] >= 2:
                timeline.append((round(t, 1), round(anon, 1), len(pids), rss_anon_mb(p.pid)))
            for pid in pids:
                try:
                    mb = psutil.Process(pid).memory_info().rss / 2**20
                except psutil.Error:
                    continue
                r = rss.setdefault(pid, {"rss_mb": 0.0, "first_s": round(t, 1)})
                r["last_s"] = round(t, 1)
                if mb > r["rss_mb"]:
                    r["rss_mb"], r["at_s"] = round(mb, 1), round(t, 1)
            if t - last_detail >= 0.3:
                last_detail = t
                for pid in pids:
                    try:
                        uss = psutil.Process(pid).memory_full_info().uss / 2**20
                        if uss > detail_mb and uss > detail.get(pid, {}).get("uss_mb", 0.0):
                            by = private_dirty_by_mapping(pid)
                            top = sorted(by.items(), key=lambda kv: -kv[1])[:8]
                            detail[pid] = {"uss_mb": round(uss, 1), "at_s": round(t, 1),
                                           "private_dirty_mb": round(sum(by.values()), 1),
                                           "top": [(k, round(v, 1)) for k, v in top]}
                    except (psutil.Error, OSError):
                        pass
            time.sleep(0.05)
        return {"command": cmd, "rc": p.returncode, "peak": peak, "driver_pid": p.pid,
                "timeline (s, group anon MB, processes, driver RssAnon MB)": timeline,
                "largest RSS": dict(sorted(rss.items(), key=lambda kv: -kv[1]["rss_mb"])[:6]),
                "largest processes": dict(sorted(detail.items(), key=lambda kv: -kv[1]["uss_mb"])[:8])}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--detail-mb", type=float, default=30.0)
    ap.add_argument("--json")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    result = measure(a.command, a.detail_mb)
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))
    for key, value in result.items():
        print(f"{key}: {json.dumps(value)}")
    return int(result["rc"] or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
