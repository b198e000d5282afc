"""Trials -> leaderboard: every trial, ranked by CV score, failures listed with their reason."""
from __future__ import annotations

import json
from typing import Any

import pandas as pd

COLUMNS = ["rank", "trial", "family", "preprocessing", "cv_mean", "cv_std", "holdout", "fit_s",
           "predict_ms_per_row", "status", "error", "origin", "params"]


def build_leaderboard(study: Any, greater_is_better: bool, chosen: int | None = None,
                      holdout_score: float | None = None) -> pd.DataFrame:
    from optuna.trial import TrialState

    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.WAITING:
            continue
        status = t.user_attrs.get("status") or t.state.name
        if t.state == TrialState.RUNNING:
            status = "RUNNING"
        params = {k: v for k, v in t.params.items() if k != "family"}
        rows.append({
            "trial": t.number,
            "family": t.params.get("family", ""),
            "preprocessing": t.user_attrs.get("preprocessing", ""),
            "cv_mean": t.value if t.state == TrialState.COMPLETE else None,
            "cv_std": t.user_attrs.get("cv_std"),
            "holdout": holdout_score if chosen is not None and t.number == chosen else None,
            "fit_s": t.user_attrs.get("fit_s"),
            "predict_ms_per_row": t.user_attrs.get("predict_ms_per_row"),
            "status": status,
            "error": t.user_attrs.get("error", ""),
            "origin": t.user_attrs.get("origin", "retry" if "retry_of" in t.user_attrs else "sampler"),
            "params": json.dumps(params, default=str),
        })
    df = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "rank"])
    done = df["cv_mean"].notna()
    ranked = df[done].sort_values("cv_mean", ascending=not greater_is_better, kind="stable")
    rest = df[~done].sort_values("trial")
    out = pd.concat([ranked, rest], ignore_index=True)
    out.insert(0, "rank", [*range(1, len(ranked) + 1), *([None] * len(rest))])
    out["rank"] = out["rank"].astype("Int64")
    return out
