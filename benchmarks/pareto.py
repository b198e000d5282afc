"""Score against deployment cost: the Pareto front of a run's trials and what each constraint costs.

For each dataset: one search (the engine's CLI, fixed seed and budget); then the K best completed trials (the
baseline excluded) are each exported with `automl export RUN_DIR --trial N` in a process of its own, so every
point is a verified graph measured the same way (automl/export/measure.py: single-row p50 in onnxruntime on
one thread, size of model.onnx, and its holdout score through onnxruntime). The front is computed on (holdout
score, ms/row, MB); each constraint (a latency or size limit at 1/2 and 1/4 of the best-scoring point's) is
priced as the score given up by the best point within it. Everything runs back to back in one sitting; the
machine is printed with the numbers.

    python benchmarks/pareto.py --budget 120 --top 8 --out /tmp/pareto   # the lead's record run
    python benchmarks/pareto.py --datasets penguins --budget 20 --top 3   # a smoke run
    python benchmarks/pareto.py --budget 60 --top 6 --per-family          # a front across families
    python benchmarks/pareto.py --objectives metric,latency,size          # a multi-objective search's front

With --objectives the search is multi-objective (search.objectives): the members of the study's own front
(leaderboard.csv `front`) are exported first, then the best other trials up to --top, and the table marks which
points the study's front held beside the front of the exported graphs.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from automl.evaluation.pareto import constraint_cost, front_mask  # noqa: E402

SHARED = ROOT.parent / "shared" / "datasets"
DEFAULT = ["penguins", "medpar", "slid_wages"]  # multiclass, binary, regression; small enough for one sitting


def cli(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "automl", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def points(spec: dict, budget: float, top: int, seed: int, out: Path,
           objectives: str = "", per_family: bool = False) -> tuple[pd.DataFrame, dict]:
    """One run, its top trials (a multi-objective study's front first; with `per_family`, the best trial of
    each family) exported and measured: one row per exported trial."""
    run = out / spec["name"] / "run"
    extra = [f"search.objectives=[{objectives}]"] if objectives else []
    p = cli(f"data.path={SHARED / spec['file']}", f"task.target={spec['target']}", f"task.metric={spec['metric']}",
            f"budget.time_s={budget}", f"seed={seed}", f"hydra.run.dir={run}", *extra, timeout=budget * 4 + 120)
    if p.returncode != 0:
        raise SystemExit(f"{spec['name']}: run failed: {p.stderr[-2000:]}")
    manifest = json.loads((run / "manifest.json").read_text())
    board = pd.read_csv(run / "leaderboard.csv")
    ok = board[(board["status"] == "COMPLETE") & (board["family"] != "baseline") & (board["trial"] != "ensemble")]
    multi = len(manifest["search"].get("objectives", ["metric"])) > 1
    on = ok["front"].astype(bool) if multi else pd.Series(False, index=ok.index)
    rest = ok[~on].drop_duplicates("family") if per_family else ok[~on]  # the board is ranked, best first
    done = pd.concat([ok[on], rest.head(max(0, top - int(on.sum())))])
    rows = []
    for _, r in done.iterrows():
        n = int(r["trial"])
        dst = out / spec["name"] / f"trial_{n}"
        e = cli("export", str(run), "--trial", str(n), "--out", str(dst), timeout=600)
        if e.returncode != 0:
            print(f"  trial {n}: not exported: {e.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            continue
        f = json.loads((dst / "manifest.json").read_text())["final"]
        d = f["deployment"]
        rows.append({"trial": n, "family": f["family"], "cv": f["cv_mean"], "holdout": f.get("holdout_score_onnx",
                     f.get("holdout_score")), "ms_per_row": d["latency_ms_p50"], "mb": d["model_mb"],
                     "batch_ms_per_1k": d["batch_ms_per_1k"], "machine": d["machine"],
                     "study_front": bool(r["front"]) if multi else None})
    return pd.DataFrame(rows), manifest


def report(name: str, df: pd.DataFrame, manifest: dict) -> list[str]:
    gib = manifest["greater_is_better"]
    if df.empty:
        return [f"## {name}: no trial exported"]
    df = df.assign(front=front_mask(df["holdout"], df[["ms_per_row", "mb"]].to_numpy(), gib))
    df = df.sort_values("holdout", ascending=not gib)
    lines = [f"## {name} ({manifest['task']}, {manifest['metric']}, {'higher' if gib else 'lower'} is better; "
             f"run shipped {manifest['final'].get('kind')} {manifest['final'].get('trial')})", "",
             f"objectives {manifest['search'].get('objectives', ['metric'])}", "",
             "| trial | family | CV | holdout (onnx) | ms/row p50 | MB | front | study's front |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r.trial} | {r.family} | {r.cv:.5g} | {r.holdout:.5g} | {r.ms_per_row:.4g} | {r.mb:.4g} | "
              f"{'*' if r.front else ''} | {'-' if r.study_front is None else '*' if r.study_front else ''} |"
              for r in df.itertuples()]
    best = df.iloc[0]
    lines += ["", "| constraint | best within it | holdout | given up |", "|---|---|---|---|"]
    for axis, label in (("ms_per_row", "max_latency_ms"), ("mb", "max_model_mb")):
        for frac in (0.5, 0.25):
            limit = float(best[axis]) * frac
            i, cost = constraint_cost(df["holdout"].tolist(), df[axis].tolist(), limit, gib)
            if i is None:
                lines.append(f"| {label}={limit:.3g} | none meets it | - | - |")
            else:
                r = df.iloc[i]
                lines.append(f"| {label}={limit:.3g} | trial {r.trial} ({r.family}) | {r.holdout:.5g} | {cost:.4g} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default=",".join(DEFAULT), help="names in ../shared/datasets/datasets.yaml")
    ap.add_argument("--budget", type=float, default=120.0, help="budget.time_s of each search")
    ap.add_argument("--top", type=int, default=8, help="best completed trials exported per dataset")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--objectives", default="", help="search.objectives, e.g. metric,latency,size (default: "
                    "the metric alone)")
    ap.add_argument("--per-family", action="store_true", help="export the best trial of each family (a front "
                    "across families) instead of the best trials, which are often one family")
    ap.add_argument("--out", default="", help="where the run folders go (default: a temporary folder)")
    a = ap.parse_args()
    specs = {d["name"]: d for d in yaml.safe_load((SHARED / "datasets.yaml").read_text())["datasets"]}
    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="pareto_"))
    lines = [f"# Pareto fronts (budget {a.budget:g} s, seed {a.seed}, "
             f"{'the best trial of each family' if a.per_family else 'the best trials'}, at most {a.top} exported each"
             + (f", search.objectives=[{a.objectives}]" if a.objectives else "") + ")", ""]
    machine = None
    for name in a.datasets.split(","):
        df, manifest = points(specs[name], a.budget, a.top, a.seed, out, a.objectives, a.per_family)
        machine = machine or (df["machine"].iloc[0] if len(df) else None)
        lines += [*report(name, df, manifest), ""]
        print("\n".join(report(name, df, manifest)), flush=True)
    lines.append(f"Measured on {json.dumps(machine)}; run folders in {out}")
    print(lines[-1])
    (out / "pareto.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
