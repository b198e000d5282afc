"""Imbalance handling on vs off, on `pneumonia` (about 2% positive): the engine with task.metric =
average_precision and = f1, each with samplers, class weights and threshold tuning switched on (the
default) and off (search.imbalance=false task.tune_threshold=false), same budget and seed.

Each seed is one stratified 80/20 split of the data file; the engine is run through its CLI on the 80%
and the exported model.onnx alone scores the 20% through the ONNX contract: average precision from the
`probabilities` output, F1 from the `label` output (so the decision threshold in the graph is what is
measured).

    python benchmarks/imbalance.py --budget 60 --seeds 0,1,2
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "datasets" / "pneumonia.csv"
MODES = {"on": [], "off": ["search.imbalance=false", "task.tune_threshold=false"]}


def score(run_dir: Path, test: pd.DataFrame, target: str, metric: str) -> float:
    from sklearn.metrics import average_precision_score, f1_score

    from automl.export.contract import class_labels, feeds_from_frame, input_schema
    from automl.export.onnx import session

    sess = session((run_dir / "model.onnx").read_bytes())
    meta = sess.get_modelmeta().custom_metadata_map
    out = dict(zip([o.name for o in sess.get_outputs()],
                   sess.run(None, feeds_from_frame(test, input_schema(meta))), strict=True))
    classes = class_labels(meta)
    y = test[target].to_numpy()
    positive = classes[-1]
    if metric == "average_precision":
        return float(average_precision_score(y == positive, out["probabilities"][:, -1]))
    return float(f1_score(y == positive, np.asarray(out["label"]).reshape(-1) == positive, zero_division=0))


def _handling(pre: str) -> str:
    """The imbalance choices in a leaderboard preprocessing string ("" = none)."""
    return " ".join(w for w in pre.split() if w.startswith(("sampler=", "class_weight=", "n_bags=")))


def search_facts(run_dir: Path, final: dict) -> dict:
    """From the run folder: the best single trial's CV score (the chosen one's may be an ensemble's OOF
    score), how many completed trials used a sampler or class weights, and what the shipped model holds."""
    lb = pd.read_csv(run_dir / "leaderboard.csv")
    done = lb[(lb.status == "COMPLETE") & (lb.trial.astype(str) != "ensemble")]
    pre = {str(t): str(p) for t, p in zip(done.trial, done.preprocessing.fillna(""), strict=True)}
    members = []
    for m in final.get("members", []):
        h = _handling(pre.get(str(m["trial"]), ""))
        members.append(f"{m['family']}{f'[{h}]' if h else ''} x{m['weight']}")
    return {"best_single_cv": float(done.cv_mean.max()) if len(done) else None,
            "trials_imbalance": sum(bool(_handling(p)) for p in pre.values()), "members": members}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--target", default="hospital")
    ap.add_argument("--budget", type=int, default=60)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--metrics", default="average_precision,f1")
    ap.add_argument("--out", default=str(HERE / "results" / "imbalance.jsonl"))
    a = ap.parse_args()
    from sklearn.model_selection import train_test_split

    df = pd.read_csv(a.data)
    work = Path(tempfile.mkdtemp(prefix="automl-imbalance-"))
    rows = []
    for seed in [int(s) for s in a.seeds.split(",")]:
        train, test = train_test_split(df, test_size=0.2, stratify=df[a.target], random_state=seed)
        train_path = work / f"train_{seed}.csv"
        train.to_csv(train_path, index=False)
        for metric in a.metrics.split(","):
            for mode, extra in MODES.items():
                run_dir = work / f"{metric}_{mode}_{seed}"
                cmd = [sys.executable, "-m", "automl", f"data.path={train_path}", f"task.target={a.target}",
                       f"task.metric={metric}", f"budget.time_s={a.budget}", f"seed={seed}",
                       f"hydra.run.dir={run_dir}", *extra]
                t = time.time()
                p = subprocess.run(cmd, capture_output=True, text=True, cwd=work,
                                   env={**os.environ, "PYTHONPATH": str(ROOT)})
                wall = time.time() - t
                row = {"seed": seed, "metric": metric, "imbalance": mode, "budget": a.budget, "rc": p.returncode,
                       "wall_s": round(wall, 1), "test_rows": len(test),
                       "test_positives": int((test[a.target] == sorted(df[a.target].unique())[-1]).sum())}
                if p.returncode == 0:
                    row["score"] = round(score(run_dir, test, a.target, metric), 5)
                    m = json.loads((run_dir / "manifest.json").read_text())
                    f = m.get("final", {})
                    row.update(cv=f.get("cv_mean"), holdout=f.get("holdout_score"),
                               threshold=f.get("decision_threshold"),
                               chosen=f.get("family"), preprocessing=f.get("preprocessing"),
                               trials=m["search"]["completed"], git_sha=m.get("git_sha"),
                               fallback=f.get("fallback_reason", ""), **search_facts(run_dir, f))
                else:
                    row["error"] = p.stderr[-500:]
                rows.append(row)
                print(json.dumps(row), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "a") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    res = pd.DataFrame(rows)
    table = res.pivot_table(index=["metric", "seed"], columns="imbalance", values="score")
    print()
    print(table.to_string())
    print()
    print(res.groupby(["metric", "imbalance"])["score"].mean().unstack().to_string())


if __name__ == "__main__":
    main()
