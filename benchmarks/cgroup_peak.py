"""Run a command in a memory cgroup of its own and record the peak memory of its whole process tree.

    python benchmarks/cgroup_peak.py [--prefix P] [--merge FILE]... OUT.json COMMAND ARG...

GNU time's %M (what ../shared/bench records as peak_rss_mb) is the largest single process of the tree. A
container's limit sees the sum: every process's private pages plus the file pages the tree brought in or
wrote. The kernel's cgroup counter (v1 `memory.max_usage_in_bytes`, v2 `memory.peak`) is exactly that, with
no polling: shared library pages already cached by an earlier run are not charged again, as in a container
that runs a second job; but a library read from disk for the first time is charged to the group that read it,
so the first run of a system after boot counts its libraries' file pages too. `tree_anon_peak_mb` is the
group's anonymous memory (what the processes allocated; v1 `rss`, v2 `anon` of memory.stat) polled every 20 ms,
which file pages never touch. OUT.json gets both merged in (keys prefixed with P), with `tree_stray_processes`
(processes still in the group when the command ended; they are killed), and then the keys of each --merge FILE
that exists (an inner measurement written while the command ran). Needs root; exits with the command's code.

A process of the command that runs this script again leaves this group for a group of its own: the inner
measurement counts it and this one no longer does (benchmarks/side_by_side.sh measures the engine's own command
so, apart from the adapter that waits for it and then scores its graph).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

V1 = Path("/sys/fs/cgroup/memory")
V2 = Path("/sys/fs/cgroup")


def make_group() -> tuple[Path, str, str]:
    name = f"automl-bench-{os.getpid()}"
    if (V1 / "memory.max_usage_in_bytes").exists():
        g = V1 / name
        g.mkdir()
        return g, "memory.max_usage_in_bytes", "rss"
    if (V2 / "cgroup.controllers").exists() and "memory" in (V2 / "cgroup.controllers").read_text():
        g = V2 / name
        g.mkdir()
        return g, "memory.peak", "anon"
    raise SystemExit("cgroup_peak: no memory cgroup controller here (needs root and cgroup v1 or v2 memory)")


def stat_bytes(group: Path, key: str) -> int:
    for line in (group / "memory.stat").read_text().splitlines():
        k, _, v = line.partition(" ")
        if k == key:
            return int(v)
    return 0


class MemoryGroup:
    """A memory cgroup for one command's tree, for the length of a `with` block: `join` (a Popen preexec_fn)
    puts the child in it, a thread polls its anonymous memory every 20 ms, `peaks()` reads both peaks and kills
    any process left in it; the group is removed on exit."""

    def __init__(self) -> None:
        self.path, self.peak_file, self.anon_key = make_group()
        self.anon = 0
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> MemoryGroup:
        self._poller.start()
        return self

    def join(self) -> None:  # in the child, before exec: everything it starts is charged to the group
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def _poll(self) -> None:
        while not self._stop.wait(0.02):
            self.anon = max(self.anon, stat_bytes(self.path, self.anon_key))

    def peaks(self, prefix: str = "") -> dict[str, float]:
        self._stop.set()
        self._poller.join()
        peak = int((self.path / self.peak_file).read_text()) / 2**20
        left = [int(x) for x in (self.path / "cgroup.procs").read_text().split()]
        for pid in left:  # a stray grandchild would keep the group alive
            os.kill(pid, signal.SIGKILL)
        return {f"{prefix}tree_peak_mb": round(peak, 1), f"{prefix}tree_anon_peak_mb": round(self.anon / 2**20, 1),
                f"{prefix}tree_stray_processes": len(left)}

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prefix", default="")
    ap.add_argument("--merge", action="append", default=[])
    ap.add_argument("out")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv[1:])
    if not a.cmd:
        ap.error("no command")
    out = Path(a.out)
    with MemoryGroup() as group:
        p = subprocess.Popen(a.cmd, preexec_fn=group.join)
        try:
            code = p.wait()
        except KeyboardInterrupt:
            p.send_signal(signal.SIGINT)
            code = p.wait()
        rec = json.loads(out.read_text()) if out.exists() else {}
        rec.update(group.peaks(a.prefix))
    for f in map(Path, a.merge):
        if f.exists():
            rec.update(json.loads(f.read_text()))
    out.write_text(json.dumps(rec))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
