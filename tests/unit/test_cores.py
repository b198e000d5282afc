"""The engine plans workers and threads for the cores it may use, not the machine's count."""
from __future__ import annotations

import os
import subprocess
import sys

from automl.config.schema import RunConfig
from automl.cores import usable_cores
from automl.stages.prepare import resolve_workers

PROBE = ("import os, sys; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
         "from automl.cores import usable_cores; "
         "from automl.stages.prepare import resolve_workers; from automl.config.schema import RunConfig; "
         "print(usable_cores(), resolve_workers(RunConfig(), 100))")


def test_a_process_pinned_to_one_core_plans_one_worker():
    # os.cpu_count() would say every core of the machine, whatever the pinning
    p = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["1", "1"]


def test_the_quota_caps_the_count_and_auto_workers(monkeypatch):
    monkeypatch.setenv("LOKY_MAX_CPU_COUNT", "1")
    assert usable_cores() == 1
    assert resolve_workers(RunConfig(), 100) == 1
    monkeypatch.delenv("LOKY_MAX_CPU_COUNT")
    assert 1 <= usable_cores() <= len(os.sched_getaffinity(0))
