"""A forked trial's own pages do not depend on when its garbage collector runs.

The supervisor freezes the parent's heap for each fork and thaws it in the parent right after
(supervisor.freeze_heap, thaw_heap): a child's full collection would otherwise write to every object it
shares with the parent and copy those pages into its own, which is what a trial's memory limit counts (USS)
and what the whole tree adds up. The parent's own collector is left as it was. Each case runs in a fresh
interpreter whose heap holds ~300,000 tracked objects, forks one supervised child that runs gc.collect(), and
reads how much that added to the child's own pages."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.cli_runner import ROOT

SCRIPT = """
import gc, sys
from automl.search import supervisor as sv
if sys.argv[1] == "off":  # what a fork without the freeze costs, for comparison
    sv.freeze_heap = sv.thaw_heap = lambda: None
held = [[i, str(i)] for i in range(300_000)]  # lists are always tracked by the collector
def child(conn):
    import psutil
    before = psutil.Process().memory_full_info().uss
    gc.collect()
    return (psutil.Process().memory_full_info().uss - before) / 2**20
out = sv.supervise(child, (), timeout_s=60, memory_mb=0)
assert gc.get_freeze_count() == 0, "the parent's objects were left frozen"
print("GROWN", out.status, out.value)
"""


def _grown_mb(freeze: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, "-c", SCRIPT, freeze], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("GROWN ")), None)
    assert line is not None, p.stderr[-3000:]
    _, status, grown = line.split()
    assert status == "COMPLETE"
    return float(grown)


def test_a_full_collection_in_a_forked_trial_copies_none_of_the_parents_heap():
    unfrozen, frozen = _grown_mb("off"), _grown_mb("on")
    assert unfrozen > 15.0, f"the comparison case copied only {unfrozen:.1f} MB: the test no longer shows the cost"
    assert frozen < 5.0, f"the child's collection copied {frozen:.1f} MB of the parent's heap into its own pages"
