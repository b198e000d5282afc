"""A --multirun sweep as rows: one per job folder (its manifest, leaderboard and Hydra overrides), the
configuration the sweep varied, and the tables drawn from them (average ranks, holdout per dataset).

The sweep callback's summary.csv, `automl compare` and the sweep's report.html all read these rows.
A job is (dataset, seed, configuration): the configuration is what the sweep varied besides the dataset
and the seed (e.g. search.sampler=tpe,random or budget.time_s=30,60).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from automl.errors import UserError
from automl.io import RunPaths, SweepPaths
from automl.manifest import read_manifest

if TYPE_CHECKING:
    import pandas as pd

NOT_CONFIG = ("seed", "data.", "task.", "hydra.", "hydra/")


def overrides(job: RunPaths) -> dict[str, str]:
    """The job's command-line overrides, from Hydra's .hydra/overrides.yaml (empty without one)."""
    import yaml

    f = job.root / ".hydra" / "overrides.yaml"
    if not f.is_file():
        return {}
    out = {}
    for o in yaml.safe_load(f.read_text()) or []:
        key, _, value = str(o).partition("=")
        out[key.lstrip("+~")] = value
    return out


def job_row(job: RunPaths) -> dict[str, Any]:
    """One job's scores, search counts, time and overrides."""
    import pandas as pd  # deferred, as everywhere here: the sweep callback loads with every run

    m = read_manifest(job)
    final = m.final
    best_family, best_cv = "", None
    if job.leaderboard.is_file():
        lb = pd.read_csv(job.leaderboard)
        singles = lb[(lb["family"] != "ensemble") & lb["cv_mean"].notna()]
        if len(singles):
            best_family, best_cv = str(singles.iloc[0]["family"]), float(singles.iloc[0]["cv_mean"])
    search_s = m.timings.get("search_s") or 0.0
    trials = m.search.get("trials_total", 0)
    return {
        "job": job.root.name, "data": m.data["name"], "seed": m.seed, "task": m.task, "metric": m.metric,
        "greater_is_better": m.greater_is_better, "status": m.status,
        "holdout": final.get("holdout_score"), "cv": final.get("cv_mean"),
        "shipped": final.get("family", ""), "best_family": best_family, "best_family_cv": best_cv,
        "trials": trials, "completed": m.search.get("completed"), "failed": m.search.get("failed"),
        "trials_per_min": round(60 * trials / search_s, 1) if search_s >= 1 else None,  # resumed runs: tiny
        "time_s": m.budget.get("used_s"), "budget_s": m.budget["time_s"],
        "n_workers": m.search.get("n_workers", 1), "overrides": overrides(job),
    }


def _launch_order(job: RunPaths) -> tuple[int, str]:
    """Hydra names job folders `<num>_<name>`: by number (2 before 10), then by name."""
    head = job.root.name.split("_")[0]
    return (int(head) if head.isdigit() else 1 << 30, job.root.name)


def collect(sweep_dir: Path) -> pd.DataFrame:
    """One row per job folder that has a manifest, in launch order; `config` names what the sweep varied."""
    import pandas as pd

    jobs = sorted(SweepPaths(sweep_dir).jobs(), key=_launch_order)
    if not jobs:
        raise UserError("SWEEP_DIR", f"{sweep_dir} holds no job folders with a manifest.json",
                        "Pass the folder a --multirun sweep wrote (hydra.sweep.dir).")
    rows = [job_row(j) for j in jobs]
    df = pd.DataFrame(rows)
    keys = sorted({k for r in rows for k in r["overrides"]})

    def varies_apart_from_data(k: str) -> bool:
        vals = df["overrides"].map(lambda o: o.get(k, ""))
        if vals.nunique() < 2 or k.startswith(NOT_CONFIG):
            return False
        # a key that only picks the dataset (e.g. +experiment=medpar,aids) is the dataset, not a configuration
        return not (vals.groupby(df["data"]).nunique().max() == 1 and df.groupby(vals)["data"].nunique().max() == 1)

    cfg_keys = [k for k in keys if varies_apart_from_data(k)]
    df["config"] = df["overrides"].map(lambda o: " ".join(f"{k}={o[k]}" for k in cfg_keys if k in o) or "default")
    return df.drop(columns=["overrides"])


def average_ranks(df: pd.DataFrame) -> pd.DataFrame | None:
    """Mean rank of each configuration over (dataset, seed), on the holdout score; None with one configuration.

    Within every (dataset, seed): 1 = best, ties share the mean rank, a failed job ranks last (AMLB-style)."""
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


def per_dataset(df: pd.DataFrame) -> pd.DataFrame:
    """Holdout mean and spread over seeds, per dataset and configuration."""
    g = df.groupby(["data", "config", "metric"])
    out = g["holdout"].agg(["mean", "std", "count"]).reset_index()
    out["best_families"] = g["best_family"].agg(lambda s: ", ".join(sorted(set(s) - {""}))).to_numpy()
    return out.round(5)


JOB_COLUMNS = ["job", "data", "seed", "config", "status", "metric", "holdout", "cv", "shipped", "best_family",
               "trials", "trials_per_min", "time_s", "budget_s"]  # the jobs table of compare.md and the sweep page

# summary.csv's columns (its own names: `model` is the shipped family)
SUMMARY_COLUMNS = {"job": "job", "data": "data", "seed": "seed", "task": "task", "metric": "metric",
                   "status": "status", "shipped": "model", "cv": "cv", "holdout": "holdout", "trials": "trials",
                   "time_s": "time_s", "budget_s": "budget_s"}


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """summary.csv: one line per job, the columns it has always had."""
    return df[list(SUMMARY_COLUMNS)].rename(columns=SUMMARY_COLUMNS)
