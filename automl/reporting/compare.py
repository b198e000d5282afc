"""`automl compare SWEEP_DIR`: one table over the jobs of a --multirun sweep, and average ranks.

Each job folder holds manifest.json, leaderboard.csv and Hydra's .hydra/overrides.yaml. A job is
(dataset, seed, configuration): the configuration is what the sweep varied besides the dataset and the
seed (e.g. search.sampler=tpe,random or budget.time_s=30,60). With several configurations, each is
ranked within every (dataset, seed) on the holdout score (1 = best, ties share the mean rank, a failed
job ranks last) and the ranks are averaged across datasets and seeds (AMLB-style). Writes compare.csv
(one row per job) and compare.md in the sweep folder, and prints the markdown.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from automl.errors import UserError

_NOT_CONFIG = ("seed", "data.", "task.", "hydra.", "hydra/")


def _overrides(job: Path) -> dict[str, str]:
    import yaml

    f = job / ".hydra" / "overrides.yaml"
    if not f.is_file():
        return {}
    out = {}
    for o in yaml.safe_load(f.read_text()) or []:
        key, _, value = str(o).partition("=")
        out[key.lstrip("+~")] = value
    return out


def _job_row(job: Path) -> dict[str, Any]:
    import pandas as pd

    m = json.loads((job / "manifest.json").read_text())
    final = m.get("final") or {}
    best_family, best_cv = "", None
    lb_path = job / "leaderboard.csv"
    if lb_path.is_file():
        lb = pd.read_csv(lb_path)
        singles = lb[(lb["family"] != "ensemble") & lb["cv_mean"].notna()]
        if len(singles):
            best_family, best_cv = str(singles.iloc[0]["family"]), float(singles.iloc[0]["cv_mean"])
    search_s = (m.get("timings") or {}).get("search_s") or 0.0
    trials = m["search"].get("trials_total", 0)
    return {
        "job": job.name, "data": m["data"]["name"], "seed": m["seed"], "task": m["task"], "metric": m["metric"],
        "greater_is_better": m["greater_is_better"], "status": m["status"],
        "holdout": final.get("holdout_score"), "cv": final.get("cv_mean"),
        "shipped": final.get("family", ""), "best_family": best_family, "best_family_cv": best_cv,
        "trials": trials, "completed": m["search"].get("completed"), "failed": m["search"].get("failed"),
        "trials_per_min": round(60 * trials / search_s, 1) if search_s >= 1 else None,  # resumed runs: tiny
        "time_s": m["budget"].get("used_s"), "budget_s": m["budget"]["time_s"],
        "n_workers": m["search"].get("n_workers", 1), "overrides": _overrides(job),
    }


def collect(sweep_dir: Path) -> Any:
    """One row per job folder that has a manifest; `config` names what the sweep varied."""
    import pandas as pd

    jobs = sorted({p.parent for p in sweep_dir.glob("*/manifest.json")},
                  key=lambda p: (int(p.name.split("_")[0]) if p.name.split("_")[0].isdigit() else 1 << 30, p.name))
    if not jobs:
        raise UserError("SWEEP_DIR", f"{sweep_dir} holds no job folders with a manifest.json",
                        "Pass the folder a --multirun sweep wrote (hydra.sweep.dir).")
    rows = [_job_row(j) for j in jobs]
    df = pd.DataFrame(rows)
    keys = sorted({k for r in rows for k in r["overrides"]})

    def varies_apart_from_data(k: str) -> bool:
        vals = df["overrides"].map(lambda o: o.get(k, ""))
        if vals.nunique() < 2 or k.startswith(_NOT_CONFIG):
            return False
        # a key that only picks the dataset (e.g. +experiment=medpar,aids) is the dataset, not a configuration
        return not (vals.groupby(df["data"]).nunique().max() == 1 and df.groupby(vals)["data"].nunique().max() == 1)

    cfg_keys = [k for k in keys if varies_apart_from_data(k)]
    df["config"] = df["overrides"].map(lambda o: " ".join(f"{k}={o[k]}" for k in cfg_keys if k in o) or "default")
    return df.drop(columns=["overrides"])


def average_ranks(df: Any) -> Any:
    """Mean rank of each configuration over (dataset, seed), on the holdout score; None with one configuration."""
    import numpy as np
    import pandas as pd

    if df["config"].nunique() < 2:
        return None
    parts = []
    for (_, _), g in df.groupby(["data", "seed"]):
        sign = 1.0 if bool(g["greater_is_better"].iloc[0]) else -1.0
        score = g["holdout"].astype(float) * sign
        score = score.where(g["status"].eq("COMPLETE") & score.notna(), -np.inf)  # failed: last
        parts.append(pd.DataFrame({"config": g["config"], "data": g["data"],
                                   "rank": score.rank(ascending=False, method="average")}))
    ranks = pd.concat(parts)
    out = ranks.groupby("config").agg(avg_rank=("rank", "mean"), n=("rank", "size")).reset_index()
    per_data = ranks.pivot_table(index="config", columns="data", values="rank", aggfunc="mean")
    per_data.columns = [f"rank_{c}" for c in per_data.columns]
    out = out.merge(per_data.reset_index(), on="config")
    time_used = df.groupby("config")["time_s"].mean().rename("mean_time_s").reset_index()
    return out.merge(time_used, on="config").sort_values("avg_rank", kind="stable").round(3)


def per_dataset(df: Any) -> Any:
    """Holdout mean and spread over seeds, per dataset and configuration."""
    g = df.groupby(["data", "config", "metric"])
    out = g["holdout"].agg(["mean", "std", "count"]).reset_index()
    out["best_families"] = g["best_family"].agg(lambda s: ", ".join(sorted(set(s) - {""}))).to_numpy()
    return out.round(5)


def _md(df: Any) -> str:
    import pandas as pd

    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        cells = []
        for v in row:
            if v is None or (isinstance(v, float) and pd.isna(v)):
                cells.append("")
            elif isinstance(v, float):
                cells.append(f"{v:.5g}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(sweep_dir: Path, df: Any) -> str:
    table = df[["job", "data", "seed", "config", "status", "metric", "holdout", "cv", "shipped", "best_family",
                "trials", "trials_per_min", "time_s", "budget_s"]]
    out = [f"# Sweep comparison: {sweep_dir}", "", f"{len(df)} jobs, {df['data'].nunique()} dataset(s), "
           f"{df['seed'].nunique()} seed(s), {df['config'].nunique()} configuration(s). holdout = score of the "
           "shipped model on rows the search never saw; best_family = best single family by CV; "
           "time_s = wall clock used of budget_s.", "", "## Jobs", "", _md(table), "",
           "## Per dataset (over seeds)", "", _md(per_dataset(df)), ""]
    ranks = average_ranks(df)
    out += ["## Average rank (lower is better)", ""]
    if ranks is None:
        out += ["One configuration in this sweep: nothing to rank. Sweep a setting (e.g. "
                "`search.sampler=tpe,random` or `budget.time_s=30,60`) to compare configurations.", ""]
    else:
        out += ["Each configuration is ranked within every (dataset, seed) on the holdout score, then averaged.",
                "", _md(ranks), ""]
    return "\n".join(out)

