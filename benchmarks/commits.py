"""Two commits of the engine side by side on the public suite, back to back in one sitting.

For a change meant to leave behaviour as it was (a refactor), or to measure what a change did: each
commit is checked out into a temporary worktree and run through the shared harness
(`../shared/bench/run_suite.py automl`, the engine through its CLI and the ONNX contract) with that
worktree first on PYTHONPATH, one run at a time, alternating commits per dataset so that drift in the
machine's load hits both. Prints a markdown table per (dataset, seed): score of each commit, their
difference, wall time over budget; then how many runs each commit won.

    python benchmarks/commits.py 6fe54c7 HEAD --budget 60 --seeds 0
    python benchmarks/commits.py 6fe54c7 HEAD --only penguins,medpar --out /tmp/refactor.md
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCH = ROOT.parent / "shared" / "bench"


def worktree(ref: str, where: Path) -> tuple[Path, str]:
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", ref], capture_output=True, text=True,
                         check=True).stdout.strip()
    path = where / sha
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(path), sha], check=True)
    return path, sha


def run_one(tree: Path, sha: str, dataset: str, seed: int, budget: int, results: Path, work: Path) -> dict:
    env = dict(os.environ, AUTOML_PYTHON=sys.executable, PYTHONPATH=str(tree))
    subprocess.run([sys.executable, str(BENCH / "run_suite.py"), "automl", "--budget", str(budget),
                    "--seeds", str(seed), "--only", dataset, "--results", str(results), f"--tag=-{sha}",
                    "--work", str(work / sha)], check=True, env=env, cwd=str(tree))
    rows = [json.loads(line) for line in open(results / f"automl-{sha}.jsonl")]
    return [r for r in rows if r.get("dataset") == dataset and r.get("seed") == seed][-1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("head")
    ap.add_argument("--budget", type=int, default=60)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--only", default="")
    ap.add_argument("--out", default="", help="also write the table here")
    a = ap.parse_args()
    suite = yaml.safe_load(open(ROOT.parent / "shared" / "datasets" / "datasets.yaml"))["datasets"]
    names = [d["name"] for d in suite if not a.only or d["name"] in a.only.split(",")]
    lower = {d["name"]: d["task"] == "regression" or d.get("metric") == "log_loss" for d in suite}
    tmp = Path(tempfile.mkdtemp(prefix="automl-commits-"))
    trees = [worktree(a.base, tmp), worktree(a.head, tmp)]
    results = tmp / "results"
    load = os.getloadavg()
    lines = [f"# {trees[0][1]} vs {trees[1][1]} at budget.time_s={a.budget}, seeds {a.seeds}", "",
             f"Load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} cores.", "",
             f"| dataset | seed | metric | {trees[0][1]} | {trees[1][1]} | diff | wall/budget {trees[0][1]} | "
             f"wall/budget {trees[1][1]} |", "|---|---|---|---|---|---|---|---|"]
    wins = [0, 0]
    try:
        for i, name in enumerate(names):
            for seed in [int(s) for s in a.seeds.split(",")]:
                order = trees if i % 2 == 0 else trees[::-1]
                got = {sha: run_one(tree, sha, name, seed, a.budget, results, tmp / "work") for tree, sha in order}
                r0, r1 = got[trees[0][1]], got[trees[1][1]]
                s0, s1 = r0.get("score"), r1.get("score")
                diff = (s1 - s0) if s0 is not None and s1 is not None else None
                if diff:
                    better_head = diff < 0 if lower[name] else diff > 0
                    wins[1 if better_head else 0] += 1
                wall = [r.get("wall_s", float("nan")) / a.budget for r in (r0, r1)]
                lines.append(f"| {name} | {seed} | {r0.get('metric', '')} | {s0:.5g} | {s1:.5g} | "
                             f"{diff:+.4g} | {wall[0]:.2f} | {wall[1]:.2f} |" if diff is not None else
                             f"| {name} | {seed} | | {s0} | {s1} | | | |")
                print(lines[-1], flush=True)
    finally:
        for tree, _ in trees:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    load = os.getloadavg()
    lines += ["", f"Better: {trees[0][1]} {wins[0]}, {trees[1][1]} {wins[1]} (equal scores count for neither). "
              f"Load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}."]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        Path(a.out).write_text(text)


if __name__ == "__main__":
    main()
