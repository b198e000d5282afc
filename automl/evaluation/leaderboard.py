"""Trials -> leaderboard: every trial, ranked by CV score, failures listed with their reason."""
from __future__ import annotations

import json
from typing import Any

import pandas as pd

from automl.evaluation.pareto import front_mask

COLUMNS = ["rank", "trial", "family", "preprocessing", "cv_mean", "cv_std", "holdout", "ensemble_weight", "fit_s",
           "predict_ms_per_row", "peak_mb", "onnx_kb", "onnx_ms_p50", "front", "status", "error", "origin", "fixed",
           "params"]


def build_leaderboard(study: Any, greater_is_better: bool, final: dict[str, Any] | None = None,
                      fixed: dict[str, Any] | None = None) -> pd.DataFrame:
    """One row per trial; with an ensemble chosen, one more row for it and each member's weight.

    `fixed` (search.fixed, "prefix.param" -> value): a trial's `fixed` column lists the pinned parameters
    it has (its family's, pre.*, imb.*); they are in its `params` too, as Optuna recorded them.
    The ensemble's cv_mean is the OOF score of the selected weights (chosen on the same OOF
    predictions, so slightly optimistic); its holdout score is not."""
    from optuna.trial import TrialState

    final = final or {}
    chosen = final.get("trial")
    holdout_score = final.get("holdout_score")
    # a stack's members have no weight: its stacker combines them (the ensemble row names them)
    weights = ({m["trial"]: m["weight"] for m in final.get("members", []) if "weight" in m}
               if chosen == "ensemble" else {})

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
            "cv_mean": t.values[0] if t.state == TrialState.COMPLETE else None,
            "cv_std": t.user_attrs.get("cv_std"),
            "holdout": holdout_score if chosen is not None and t.number == chosen else None,
            "ensemble_weight": weights.get(t.number),
            "fit_s": t.user_attrs.get("fit_s"),
            "predict_ms_per_row": t.user_attrs.get("predict_ms_per_row"),
            "peak_mb": t.user_attrs.get("peak_mb"),  # the trial's own pages (USS), measured under a memory limit
            # the graph's size where the search exported the trial (loop.worth_exporting)
            "onnx_kb": round(t.user_attrs["onnx_bytes"] / 1e3, 2) if "onnx_bytes" in t.user_attrs else None,
            "onnx_ms_p50": t.user_attrs.get("onnx_ms_p50"),
            "status": status,
            "error": t.user_attrs.get("error", ""),
            "origin": t.user_attrs.get("origin", "retry" if "retry_of" in t.user_attrs else "sampler"),
            "fixed": json.dumps({k: v for k, v in (fixed or {}).items() if k in t.params}, default=str)
            if fixed else "",
            "params": json.dumps(params, default=str),
        })
    if chosen == "ensemble":
        rows.append({
            "trial": "ensemble", "family": "ensemble",
            "preprocessing": " + ".join(f"{m['trial']}:{m['family']}" + (f"x{m['weight']:.2f}" if "weight" in m else "")
                                        for m in final["members"]),
            "cv_mean": final.get("cv_mean"), "holdout": holdout_score, "ensemble_weight": 1.0,
            "fit_s": final.get("timings", {}).get("refit_s"), "status": "COMPLETE", "error": "",
            "origin": ("stacked: a level-2 model on the members' OOF predictions (nested OOF score)"
                       if final.get("stacker") else "ensemble selection (Caruana) over OOF predictions"),
            "fixed": "", "params": "{}",
        })
    df = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "rank"])
    # on the Pareto front of CV score against graph size and single-row latency, among the trials whose graph
    # the search measured; `automl export --trial N` ships any of them (its card measures the exported graph).
    # A multi-objective study (search.objectives) has its own front, on the objectives it optimised
    sized = df["cv_mean"].notna() & df["onnx_kb"].notna() & df["onnx_ms_p50"].notna() & (df["trial"] != "ensemble")
    df["front"] = False
    if len(study.directions) > 1:
        df["front"] = df["trial"].isin({t.number for t in study.best_trials})
    elif sized.any():
        df.loc[sized, "front"] = front_mask(df.loc[sized, "cv_mean"].astype(float).tolist(),
                                            df.loc[sized, ["onnx_kb", "onnx_ms_p50"]].astype(float).to_numpy().tolist(),
                                            greater_is_better)
    done = df["cv_mean"].notna()
    ranked = df[done].sort_values("cv_mean", ascending=not greater_is_better, kind="stable")
    rest = df[~done]
    out = pd.concat([ranked, rest], ignore_index=True)
    out.insert(0, "rank", [*range(1, len(ranked) + 1), *([None] * len(rest))])
    out["rank"] = out["rank"].astype("Int64")
    return out
