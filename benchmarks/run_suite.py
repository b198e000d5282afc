"""Run the shared benchmark protocol on this engine and write benchmarks/RESULTS.md.

Runs `../shared/bench/run_suite.py automl` (fixed 80/20 splits, the engine fitted through its CLI,
scored by onnxruntime alone through the ONNX contract) into benchmarks/results/automl.jsonl, then
tabulates it next to the other systems' recorded scores (../shared/bench/results/*.jsonl) with
`../shared/bench/summarize.py`, plus per-run wall time / budget and peak memory.

    python benchmarks/run_suite.py --budget 60 --seeds 0,1            # all datasets, ~25 min
    python benchmarks/run_suite.py --budget 60 --seeds 0 --only penguins,medpar
    python benchmarks/run_suite.py --summarize-only                    # re-tabulate existing results
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent.parent / "shared" / "bench"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=60)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--only", default="")
    ap.add_argument("--bench", default=str(BENCH), help="the shared bench harness folder")
    ap.add_argument("--results", default=str(HERE / "results"))
    ap.add_argument("--summarize-only", action="store_true")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"), help="where the tables go (exploratory runs: elsewhere)")
    a = ap.parse_args()
    bench, results = Path(a.bench), Path(a.results)
    results.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, AUTOML_PYTHON=sys.executable)
    if not a.summarize_only:
        cmd = [sys.executable, str(bench / "run_suite.py"), "automl", "--budget", str(a.budget), "--seeds", a.seeds,
               "--results", str(results), "--work", tempfile.mkdtemp(prefix="automl-bench-")]
        if a.only:
            cmd += ["--only", a.only]
        subprocess.run(cmd, check=True, env=env)
    with tempfile.TemporaryDirectory() as tmp:
        for f in (bench / "results").glob("*.jsonl"):
            if f.stem != "automl":
                shutil.copy(f, Path(tmp) / f.name)
        shutil.copy(results / "automl.jsonl", Path(tmp) / "automl.jsonl")
        seeds = a.seeds
        table = subprocess.run([sys.executable, str(bench / "summarize.py"), tmp, "--seeds", seeds],
                               capture_output=True, text=True, check=True).stdout
    runs = [json.loads(line) for line in open(results / "automl.jsonl")]
    seed_set = {int(s) for s in seeds.split(",")}
    runs = [r for r in runs if r["seed"] in seed_set and r["budget"] == a.budget]
    lines = [
        f"# automl vs AutoGluon, FLAML and the HGB floor at budget.time_s={a.budget}",
        "",
        "Protocol: `../shared/bench/run_suite.py` (same 80/20 splits, same scorer, same budget; the engine is run "
        "through its CLI and scored by onnxruntime alone through the ONNX contract). Other systems' scores are the "
        "ones recorded in `../shared/bench/results/` (same 2-core machine type). Scores are means over seeds.",
        "",
        "Reproduce: `python benchmarks/run_suite.py --budget %d --seeds %s`" % (a.budget, seeds),
        "",
        table.strip(),
        "",
        "## Every automl run",
        "",
        "| dataset | seed | score | wall s | wall/budget | peak MB | rc |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        lines.append(f"| {r['dataset']} | {r['seed']} | {r.get('score', 'error')} | {r['wall_s']} | {r['overrun']} | "
                     f"{r.get('peak_rss_mb', '')} | {r['rc']} |")
    notes = HERE / "NOTES.md"  # the measured assessment, kept by hand next to the generated tables
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
