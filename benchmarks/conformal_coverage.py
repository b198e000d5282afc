"""Issue 18's numbers: conformal coverage of the shipped graph on rows the engine never saw, and the
grouped-validation canary.

Coverage: each dataset of ../shared/datasets is split 80/20 (seeded, stratified for classification); the
engine runs through its CLI on the 80% with task.coverage, and the exported model.onnx alone scores the 20%
through the ONNX contract (`interval` / `prediction_set`). Printed per dataset and target coverage: the
measured coverage on those rows, the mean interval width or prediction-set size, and for regression which
width shipped (constant, or normalised by the difficulty model) with the out-of-fold widths it was chosen on.

Canary: the target is a per-group effect and a feature (`store_code`) identifies the group
(tests/unit/test_group_canary.py builds the data). The engine runs twice on the same training groups, without
and with data.group_column; printed: each run's CV estimate (r2) and the shipped model's r2 on groups it
never saw.

    python benchmarks/conformal_coverage.py --budget 30 --coverages 0.9,0.8
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "datasets"
# (file, target, task): four regressions (doctor_contacts: counts, whose spread grows with their mean), two
# binary, one multiclass (datasets.yaml)
DATASETS = [("slid_wages.csv", "wages", "regression"), ("star_math.csv", "tmathssk", "regression"),
            ("schooling.csv", "lwage76", "regression"), ("doctor_contacts.csv", "mdu", "regression"),
            ("pneumonia.csv", "hospital", "binary"),
            ("aids.csv", "status", "binary"), ("penguins.csv", "species", "multiclass")]


def engine(train: Path, target: str, run_dir: Path, budget: int, seed: int, *extra: str) -> dict:
    cmd = [sys.executable, "-m", "automl", f"data.path={train}", f"task.target={target}", f"budget.time_s={budget}",
           f"seed={seed}", f"hydra.run.dir={run_dir}", *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=run_dir.parent,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[3:])} failed: {p.stderr[-800:]}")
    return json.loads((run_dir / "manifest.json").read_text())


def graph(run_dir: Path, frame: pd.DataFrame) -> tuple[dict[str, np.ndarray], list | None]:
    from automl.export.contract import class_labels, feeds_from_frame, input_schema
    from automl.export.onnx import session

    sess = session((run_dir / "model.onnx").read_bytes())
    meta = sess.get_modelmeta().custom_metadata_map
    out = dict(zip([o.name for o in sess.get_outputs()],
                   sess.run(None, feeds_from_frame(frame, input_schema(meta))), strict=True))
    return out, (class_labels(meta) if "class_labels" in meta else None)


def coverage_row(name: str, target: str, task: str, coverage: float, budget: int, seed: int, work: Path) -> dict:
    from sklearn.model_selection import train_test_split

    df = pd.read_csv(SHARED / name)
    df = df[df[target].notna()].reset_index(drop=True)
    train, test = train_test_split(df, test_size=0.2, random_state=seed,
                                   stratify=df[target] if task != "regression" else None)
    path = work / f"train_{name}"
    train.to_csv(path, index=False)
    run_dir = work / f"{name.removesuffix('.csv')}_{coverage:g}"
    m = engine(path, target, run_dir, budget, seed, f"task.coverage={coverage}")
    out, classes = graph(run_dir, test.drop(columns=[target]))
    conf = m["final"]["conformal"]
    row = {"dataset": name.removesuffix(".csv"), "task": task, "target_coverage": coverage, "test_rows": len(test),
           "model": m["final"].get("family"), "git_sha": m.get("git_sha")}
    if task == "regression":
        iv, y = np.asarray(out["interval"], dtype=np.float64), test[target].to_numpy(dtype=float)
        w = conf.get("oof_mean_width", {})
        row.update(coverage=float(np.mean((y >= iv[:, 0]) & (y <= iv[:, 1]))),
                   size=float(np.mean(iv[:, 1] - iv[:, 0])),
                   scale=conf.get("scale"), oof_width_constant=w.get("constant"),
                   oof_width_normalised=w.get("normalised"))
    else:
        sets = np.asarray(out["prediction_set"], dtype=bool)
        assert classes is not None
        idx = {str(c): i for i, c in enumerate(classes)}
        truth = np.asarray([idx[str(v)] for v in test[target]])
        row.update(coverage=float(np.mean(sets[np.arange(len(truth)), truth])), size=float(sets.sum(axis=1).mean()),
                   scale="sets", empty=float(np.mean(sets.sum(axis=1) == 0)))
    row["engine_holdout_coverage"] = (m["final"].get("conformal_holdout") or {}).get("coverage")
    return row


def canary_rows(budget: int, seed: int, work: Path) -> list[dict]:
    sys.path.insert(0, str(ROOT))
    from sklearn.metrics import r2_score

    from tests.unit.test_group_canary import N_GROUPS, canary

    train, new = canary(seed), canary(seed + 1, first_group=N_GROUPS)  # `new`: groups never seen
    path = work / "canary.csv"
    train.to_csv(path, index=False)
    rows = []
    for label, extra in (("random split", []), ("data.group_column=store", ["data.group_column=store"])):
        run_dir = work / f"canary_{'grouped' if extra else 'random'}"
        m = engine(path, "y", run_dir, budget, seed, "task.metric=r2", *extra)
        out, _ = graph(run_dir, new.drop(columns=["y"]))
        rows.append({"run": label, "cv_estimate": m["final"]["cv_mean"], "engine_holdout": m["final"].get(
            "holdout_score"), "new_groups": float(r2_score(new["y"], np.asarray(out["label"]).reshape(-1))),
            "model": m["final"].get("family"), "git_sha": m.get("git_sha")})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--coverages", default="0.9")
    ap.add_argument("--datasets", default=",".join(n.removesuffix(".csv") for n, _, _ in DATASETS))
    ap.add_argument("--no-canary", action="store_true")
    ap.add_argument("--out", default=str(HERE / "results" / "conformal_coverage.jsonl"))
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="automl-conformal-"))
    wanted = set(a.datasets.split(","))
    rows = []
    for name, target, task in DATASETS:
        if name.removesuffix(".csv") not in wanted:
            continue
        for cov in [float(c) for c in a.coverages.split(",")]:
            rows.append(coverage_row(name, target, task, cov, a.budget, a.seed, work))
            print(json.dumps(rows[-1]), flush=True)
    can = [] if a.no_canary else canary_rows(a.budget, a.seed, work)
    for r in can:
        print(json.dumps(r), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "a") as fh:
        for r in rows + can:
            fh.write(json.dumps({**r, "budget": a.budget, "seed": a.seed}) + "\n")
    print("\n| dataset | task | model | target | measured coverage | mean width or set size | width | rows |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        width = r["scale"]
        if r["task"] == "regression" and r.get("oof_width_constant") is not None:
            width += f" (OOF {r['oof_width_constant']:.4g} const vs {r['oof_width_normalised']:.4g} norm)"
        print(f"| {r['dataset']} | {r['task']} | {r['model']} | {r['target_coverage']:g} | {r['coverage']:.3f} "
              f"| {r['size']:.4g} "
              f"| {width} | {r['test_rows']} |")
    print("\n| canary run | CV estimate (r2) | new-group r2 | optimism |")
    print("|---|---|---|---|")
    for r in can:
        gap = r["cv_estimate"] - r["new_groups"]
        print(f"| {r['run']} | {r['cv_estimate']:.3f} | {r['new_groups']:.3f} | {gap:+.3f} |")


if __name__ == "__main__":
    main()
