"""How many CPU cores this process may use: the cores it is allowed to run on (its affinity, as `taskset`
or a container's cpuset sets it) and the container's CPU quota (`docker --cpus`), not the machine's count.

`os.cpu_count()` reports every core of the host, so an engine in a 2-CPU container on a 64-core host would
start 4 search workers of 16 threads each and spend its budget waiting for the quota. joblib's count (the one
scikit-learn's `n_jobs=-1` uses) reads the affinity and the cgroup quota, and `LOKY_MAX_CPU_COUNT` caps it.
"""
from __future__ import annotations

from joblib import cpu_count


def usable_cores() -> int:
    """The cores the engine plans its search workers and each trial's threads for (at least 1)."""
    return max(1, int(cpu_count()))
