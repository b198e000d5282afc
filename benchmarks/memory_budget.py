"""Memory budgets that hold and pay: a CSV several times budget.memory_mb, run at the budget and at 2x and
4x it, each process's peak RSS measured from outside, with the rows searched and refit and the holdout score.

    nice -n 10 python benchmarks/memory_budget.py --file-mb 1200 --budgets 400 800 1600 --time 300

The CSV (/tmp/membudget/doctor_big.csv) resamples ../shared/datasets/doctor_contacts.csv (20,186 rows,
regression target `mdu`, 14 features of which 2 text and 4 boolean) with noise on the continuous columns
(tests/proc_peaks.py write_big_csv); with --high-cardinality (/tmp/membudget/doctor_big_hc.csv, results_hc.json)
it also holds a 200,000-level and a 5,000-level string column that shift the target. Memory is polled every 50 ms
for every process of the engine's tree (tests/proc_peaks.py TreePeaks): the driver's peak and the largest forked
trial's, each on its own, as the operating system counts them (a forked trial's RSS includes the pages it shares
with the driver). Run as root, the engine's command also runs in a memory cgroup of its own
(benchmarks/cgroup_peak.py): `tree_mb` is the kernel's peak for the whole tree (file pages it read or wrote
included), `tree_anon_mb` its anonymous memory polled.
Numbers from a shared machine are indicative only: say so next to them.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.proc_peaks import watched_run, write_big_csv  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from cgroup_peak import MemoryGroup  # noqa: E402

OUT = Path("/tmp/membudget")


def one(data: Path, budget_mb: int, time_s: float) -> dict:
    run_dir = OUT / f"run_{budget_mb}"
    shutil.rmtree(run_dir, ignore_errors=True)
    cmd = [sys.executable, "-m", "automl", f"data.path={data}", "task.target=mdu", f"budget.time_s={time_s}",
           f"budget.memory_mb={budget_mb}", f"hydra.run.dir={run_dir}"]
    t0 = time.time()
    env, timeout = {**os.environ, "PYTHONPATH": str(ROOT)}, 4 * time_s + 300
    if os.geteuid() == 0:
        with MemoryGroup() as group:
            proc, peaks = watched_run(cmd, env, ROOT, timeout=timeout, preexec_fn=group.join)
            tree = group.peaks()
        # TreePeaks' own tree figure (Pss_Anon summed every 50 ms) kept beside the cgroup's
        peaks["pss_tree_anon_mb"] = peaks.pop("tree_anon_mb")
        peaks.update(tree_mb=tree["tree_peak_mb"], tree_anon_mb=tree["tree_anon_peak_mb"])
    else:
        proc, peaks = watched_run(cmd, env, ROOT, timeout=timeout)
    (OUT / f"run_{budget_mb}.log").write_text(proc.stderr)
    man = json.loads((run_dir / "manifest.json").read_text()) if (run_dir / "manifest.json").exists() else {}
    s, fin = man.get("sampling", {}), man.get("final", {})
    return {"budget_mb": budget_mb, "time_s": time_s, "exit": proc.returncode, "wall_s": round(time.time() - t0, 1),
            **peaks, "over_budget": peaks["max_process_mb"] > budget_mb,
            "rows_total": s.get("rows_total"), "memory_rows": s.get("memory_sample_rows"),
            "search_rows": s.get("search_sample_rows"), "final_rows": s.get("final_model_rows"),
            "row_cost": s.get("row_cost"), "curve": [(p.get("rows"), p.get("score"))
                                                     for p in (s.get("learning_curve") or {}).get("points", [])],
            "model": fin.get("family") or fin.get("kind"), "holdout_rmse": fin.get("holdout_score"),
            "completed": man.get("search", {}).get("completed")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--file-mb", type=float, default=1200.0)
    ap.add_argument("--budgets", type=int, nargs="+", default=[400, 800, 1600])
    ap.add_argument("--time", type=float, default=300.0)
    ap.add_argument("--high-cardinality", action="store_true",
                    help="add a 200,000-level and a 5,000-level string column that shift the target")
    a = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    data = OUT / ("doctor_big_hc.csv" if a.high_cardinality else "doctor_big.csv")
    if not data.exists() or abs(data.stat().st_size / 2**20 - a.file_mb) > 0.05 * a.file_mb:
        rows = write_big_csv(data, a.file_mb, high_cardinality=a.high_cardinality)
        print(f"built {data}: {rows} rows, {data.stat().st_size / 2**20:.0f} MB", flush=True)
    res = [one(data, b, a.time) for b in a.budgets]
    (OUT / ("results_hc.json" if a.high_cardinality else "results.json")).write_text(json.dumps(res, indent=1))
    print(f"{'budget':>7} {'driver':>7} {'trial':>7} {'tree':>7} {'anon':>7} {'procs':>5} {'rows':>9} {'search':>7} "
          f"{'final':>7} {'holdout':>8}  model")
    for r in res:
        print(f"{r['budget_mb']:>7} {r['driver_mb']:>7.0f} {r['max_child_mb']:>7.0f} {r.get('tree_mb', 0):>7.0f} "
              f"{r.get('tree_anon_mb', 0):>7.0f} {r['children']:>5} "
              f"{r['rows_total'] or 0:>9} {r['search_rows'] or 0:>7} {r['final_rows'] or 0:>7} "
              f"{r['holdout_rmse'] or float('nan'):>8.4g}  {r['model']}")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
