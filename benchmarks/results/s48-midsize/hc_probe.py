"""Probe: a CSV ~3x a 400 MB budget with high-cardinality string columns (doctor_contacts rows + a 200k-level
'provider' id whose level shifts the target a little, a 5k-level 'region'), run at budget.memory_mb=400."""
import json, os, sys, time
from pathlib import Path
import numpy as np, pandas as pd, pyarrow as pa, pyarrow.csv as pcsv
sys.path.insert(0, "/work/main")
sys.path.insert(0, "/work/main/benchmarks")
from tests.proc_peaks import watched_run
from cgroup_peak import MemoryGroup
OUT = Path("/tmp/s48/hc"); data = OUT / "hc.csv"
budget = int(sys.argv[1]) if len(sys.argv) > 1 else 400
if not data.exists():
    base = pd.read_csv("/work/shared/datasets/doctor_contacts.csv")
    rng = np.random.default_rng(0)
    prov_eff = rng.normal(0, 1.0, 200_000); reg_eff = rng.normal(0, 0.5, 5000)
    sink = pa.OSFile(str(data), "wb"); w = None
    while sink.tell() < 1200 * 2**20:
        n = 500_000
        df = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
        df["linc"] = np.round(df["linc"] * (1 + rng.normal(0, 0.02, n)), 4)
        df["age"] = np.round(df["age"] + rng.normal(0, 0.5, n), 3)
        p = rng.zipf(1.3, n) % 200_000; r = rng.integers(0, 5000, n)
        df["provider"] = pd.Series(p).map(lambda i: f"prov_{i:06d}")
        df["region"] = pd.Series(r).map(lambda i: f"region-{i:04d}")
        df["mdu"] = np.maximum(0, np.round(df["mdu"] + prov_eff[p] + reg_eff[r])).astype(int)
        t = pa.Table.from_pandas(df, preserve_index=False)
        w = w or pcsv.CSVWriter(sink, t.schema); w.write_table(t)
    w.close(); sink.close()
    print("built", data.stat().st_size / 2**20, "MB", flush=True)
run_dir = OUT / f"run_{budget}"
import shutil; shutil.rmtree(run_dir, ignore_errors=True)
cmd = [sys.executable, "-m", "automl", f"data.path={data}", "task.target=mdu", "budget.time_s=180",
       f"budget.memory_mb={budget}", f"hydra.run.dir={run_dir}"]
t0 = time.time()
with MemoryGroup() as g:
    proc, peaks = watched_run(cmd, {**os.environ, "PYTHONPATH": "/work/main"}, Path("/work/main"), timeout=900, preexec_fn=g.join)
    tree = g.peaks()
(OUT / f"run_{budget}.log").write_text(proc.stderr)
man = json.loads((run_dir / "manifest.json").read_text()) if (run_dir / "manifest.json").exists() else {}
s, fin = man.get("sampling", {}), man.get("final", {})
print(json.dumps({"exit": proc.returncode, "wall": round(time.time() - t0, 1), **peaks, **tree,
                  "rows": s.get("rows_total"), "search_rows": s.get("search_sample_rows"), "final_rows": s.get("final_model_rows"),
                  "model": fin.get("family") or fin.get("kind"), "holdout": fin.get("holdout_score"),
                  "completed": man.get("search", {}).get("completed")}, indent=1, default=str))
print(proc.stderr[-1500:])
