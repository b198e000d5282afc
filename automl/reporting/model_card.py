"""model_card.md: what the model is for, what it learned from, how it was chosen and how far to trust it."""
from __future__ import annotations

from typing import Any

import pandas as pd

from automl.manifest import Manifest
from automl.reporting.calibration_card import card_lines as calibration_lines
from automl.reporting.features_section import synthesised_features
from automl.reporting.sampling_card import card_lines


def _table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NA:
                cells.append("")
            elif isinstance(v, float):
                cells.append(f"{v:.5g}")
            else:
                cells.append(str(v).replace("|", "\\|").replace("\n", " ")[:120])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _class_lines(final: dict[str, Any], task: str) -> list[str]:
    """The decision rule and per-class precision / recall on the holdout (classification)."""
    out: list[str] = []
    t = final.get("decision_threshold")
    if task != "regression":
        out += ["", "### Decision rule and per-class holdout performance", ""]
        if t is not None:
            out.append(f"- Decision threshold **{t:.6g}**: `label` is the positive class where "
                       f"probabilities[:, 1] >= {t:.6g} (chosen on out-of-fold predictions for the run's metric; "
                       "`probabilities` are the model's own).")
        else:
            out.append("- `label` is the most probable class (first on ties); no decision threshold was tuned.")
    rows = final.get("holdout_per_class")
    if rows:
        out += ["", _table(pd.DataFrame(rows)[["class", "precision", "recall", "f1", "support", "predicted"]])]
    return out


def _validation_lines(profile: dict[str, Any]) -> list[str]:
    """The split used and why (data.group_column / data.time_column)."""
    v = profile.get("validation")
    if not v:
        return []
    out = [f"- Split ({v['split']}): {v['how']}. Why: {v['why']}."]
    if v.get("scoring_how"):
        out.append(f"- Trials scored by {v['scoring_how']}. Why: {v['scoring_why']}.")
    return out


def _rescore_lines(r: dict[str, Any] | None, metric: str) -> list[str]:
    """The best trials scored again on fresh folds (search.rescore): what changed and how optimistic the
    search's best estimate was."""
    if not r:
        return []
    moved = (f"the best trial changed from {r['best_before']} to {r['best_after']}"
             if r["best_before"] != r["best_after"] else f"trial {r['best_after']} stayed first")
    drop = ("" if r.get("drop") is None else f"; the search's best estimate minus its score on fresh folds (its "
            f"optimism, in the direction of better) is {r['drop']:+.4g}")
    return [f"- Robust selection: the top {len(r['trials'])} trials were cross-validated again on fresh "
            f"{r['folds']}-fold splits ({r['seconds']:.1f} s) and ranked by the mean of both {metric} estimates: "
            f"{moved}{drop}.", "", _table(pd.DataFrame(r["trials"])), ""]


def _conformal_lines(final: dict[str, Any]) -> list[str]:
    """Conformal outputs (task.coverage): what the graph carries and the coverage measured on the holdout."""
    c = final.get("conformal")
    if not c:
        return []
    out = ["", "## Uncertainty (conformal prediction)",
           f"- Target coverage {c['coverage']:g}: {c['method']}, {c['calibration_rows']} rows"
           + (", one threshold per class" if c["class_conditional"] else "") + "."]
    if "scale" in c:
        out.append("- " + interval_scale_line(c))
    h = final.get("conformal_holdout")
    if h:
        size = (f"mean interval width {h['mean_width']:.5g}" if "mean_width" in h
                else f"mean set size {h['mean_set_size']:.3g} ({100 * h['empty_sets']:.1f}% empty)")
        out.append(f"- On the {h['rows']} holdout rows: measured coverage **{h['coverage']:.3f}**, {size}.")
    return out


def interval_scale_line(c: dict[str, Any]) -> str:
    """Which interval width ships (task.interval_scale) and why, from the OOF comparison."""
    w = c.get("oof_mean_width") or {}
    seen = (f" (out-of-fold mean width: constant {w['constant']:.5g}, normalised {w['normalised']:.5g})"
            if {"constant", "normalised"} <= set(w) else "")
    if c["scale"] == "normalised":
        narrower = bool(seen) and w["normalised"] < w["constant"]
        return (f"Interval width: normalised, prediction -+ q * max(sigma(x), {c['sigma_floor']:.4g}), sigma(x) a "
                f"model of |residual| inside the graph, "
                + ("chosen because it narrows the intervals at equal coverage" if narrower
                   else "as task.interval_scale=normalised asks") + f"{seen}.")
    why = ("the difficulty model failed its parity gate: " + c["normalised_refused"][:200]
           if c.get("normalised_refused") else
           "normalised widths were not narrower on the out-of-fold rows" if w else "task.interval_scale")
    return f"Interval width: constant (prediction -+ q), because {why}{seen}."


def combined_lines(final: dict[str, Any], task: str, metric: str) -> list[str]:
    """The card's account of an ensemble: how its graph combines the members, and how that was chosen."""
    if final.get("stacker"):
        st = final["stacker"]
        return [
            f"- A **stacked** ensemble of {len(final['members'])} pipelines: the graph runs every member on the "
            "raw columns and combines their "
            + (f"probabilities with a level-2 logistic regression (C = {st['C']:g})" if task != "regression"
               else "predictions by non-negative least squares")
            + ", fitted on their out-of-fold predictions. It was chosen on nested out-of-fold "
            f"{metric} (each part predicted by a stacker fitted without it): {st['nested_oof_score']:.5g} "
            f"against {st['caruana_oof_score']:.5g} for greedy ensemble selection's weights (Caruana et al. "
            f"2004) over the same members ({st['caruana_score_kind']}); the CV figure above is the stack's "
            "nested score. Its members:", "",
            _table(pd.DataFrame(final["members"])), "",
        ]
    return [
        f"- A weighted **ensemble** of {len(final['members'])} pipelines, chosen by greedy ensemble "
        "selection (Caruana et al. 2004) on their out-of-fold predictions; weights are selection "
        f"counts. OOF {metric} of the ensemble {final['cv_mean']:.5g} (selected on the same OOF "
        "predictions, so slightly optimistic; the holdout score below is not).",
        "- The graph runs every member on the raw columns and averages their "
        + ("probabilities" if task != "regression" else "predictions") + " with these weights:", "",
        _table(pd.DataFrame(final["members"])), "",
    ]


def render(m: Manifest, profile: dict[str, Any], leaderboard: pd.DataFrame) -> str:
    task, metric = m.task, m.metric
    final = m.final
    lines = [
        f"# Model card: {m.data['name']} -> {m.target}",
        "",
        "## Task and intended use",
        f"- Predicts **{m.target}** ({task}) from {profile['n_features']} raw columns of `{m.data['path']}`"
        + (f" (table `{m.data['table']}`)" if m.data.get("table") else
           f" (query `{m.data['query']}`)" if m.data.get("query") else "") + ".",
        f"- Chosen by **{metric}** ({'higher' if m.greater_is_better else 'lower'} is better) under a "
        f"{m.budget['time_s']:.0f} s budget, seed {m.seed}.",
        "- Intended use: scoring new rows drawn from the same population as the training data, through "
        "`model.onnx` (raw columns in, predictions out). It is not validated for other populations, and "
        "nothing here establishes causal effects or fairness across groups.",
        f"- Run status: **{m.status}**" + (f" ({m.error})" if m.error else ""),
        "",
        "## Data profile",
        f"- {profile['n_rows']} rows, {profile['n_columns']} columns; {profile['duplicate_rows']} duplicate rows.",
    ]
    for role, names in profile["roles"].items():
        if names:
            lines.append(f"- {role}: {', '.join(names)}")
    t = profile["target"]
    if "classes" in t:
        lines.append(f"- Target classes: {t['classes']} (imbalance ratio {t['imbalance_ratio']})")
        if t.get("imbalanced"):
            lines.append(f"- Imbalanced target: class '{t['minority_class']}' is {100 * t['minority_share']:.1f}% of "
                         "rows; see the per-class holdout performance below.")
    else:
        lines.append(f"- Target: mean {t.get('mean', float('nan')):.4g}, std {t.get('std', float('nan')):.4g}, "
                     f"skew {t.get('skew', 0):.3g}")
    if m.rows_dropped_missing_target:
        lines.append(f"- {m.rows_dropped_missing_target} rows with a missing target were dropped.")
    cols = pd.DataFrame([{k: c.get(k) for k in ("name", "role", "dtype", "missing_pct", "cardinality",
                                                   "outlier_share", "skew")} for c in profile["columns"]])
    lines += ["", _table(cols), "", "### Data-quality warnings"]
    lines += [f"- {w}" for w in profile["warnings"]] or ["- none"]
    s = m.search
    lines += [
        "", "## Search",
        f"- Optuna {s['sampler']} sampler, "
        + (f"{s['cv_folds']}-fold cross-validation" if s["cv_folds"] > 1 else "one inner validation split")
        + f" on {s['search_rows']} rows, every preprocessing step fitted inside each fold; "
        f"{s['holdout_rows']} holdout rows never seen by the search.",
        f"- Trials: {s['completed']} complete, {s['failed']} failed, {s['pruned']} pruned or skipped "
        f"(stopped: {s['stopped_because']}).",
        *([f"- Each trial first fitted on {s['rung_rows']} of the inner split's training rows; one below the "
           "median of the earlier trials' scores there stopped (pruned) without its full fit."]
          if s.get("rung_rows") else []),
        f"- Families searched: {', '.join(s['families'])}.",
        *([f"- Objectives (search.objectives): {', '.join(s['objectives'])}: a multi-objective study (TPE); "
           "pruning was off (Optuna's pruners take one objective), and each trial's latency and size are its "
           "search graph's, measured (trial attr `objective_source`). The leaderboard's `front` is the study's "
           "Pareto front; the best-score member of it is shipped unless a constraint refuses it."]
          if len(s.get("objectives", ())) > 1 else []),
        *([f"- Pinned (search.fixed, not searched; the same in every trial that has them): "
           f"{', '.join(f'`{k}={v}`' for k, v in s['fixed'].items())}."] if s.get("fixed") else []),
        *_validation_lines(profile),
        "", "### Leaderboard (top 10)", "",
        _table(leaderboard.head(10)[["rank", "trial", "family", "preprocessing", "cv_mean", "cv_std", "holdout",
                                     "ensemble_weight", "fit_s", "status"]]),
    ]
    bad = leaderboard[~leaderboard["status"].isin(["COMPLETE", "PRUNED", "SKIPPED"])]
    if len(bad):
        lines += ["", f"{len(bad)} trial(s) did not complete; `leaderboard.csv` lists each with its reason."]
    if final:
        lines += ["", "## Chosen model"]
        if final.get("kind") == "ensemble":
            lines += combined_lines(final, task, metric)
        else:
            lines += [
                f"- Trial {final['trial']}: **{final['family']}** ({final['preprocessing']}).",
                f"- Parameters: `{final['params']}`",
            ]
        lines += synthesised_features(final)
        if final.get("probability_floor"):
            lines.append(f"- Probabilities are floored for log loss: p' = (1 - {final['probability_floor']:g}) p + "
                         f"{final['probability_floor']:g} / C, chosen on out-of-fold predictions; it bounds the "
                         "loss of one confident miss on new data.")
        refit_s = final['timings'].get('refit_s', 0)
        lines.append(f"- Refit on {final['fit_rows']} of the {s['search_rows']} search rows in {refit_s:.2f} s: "
                     f"{final['fit_rows_reason']}." if final.get("fit_rows_reason")
                     else f"- Refit on all {s['search_rows']} search rows in {refit_s:.2f} s.")
        if final.get("fallback_reason"):
            lines.append(f"- Note: {final['fallback_reason']}")
        intended = final.get("intended")
        if intended and intended.get("cv") is not None and final.get("cv_mean") is not None:
            lines.append(f"- Shipped instead of the {intended['plan']} (CV {metric} {intended['cv']:.5g}): "
                         f"this model's CV {metric} is {final['cv_mean']:.5g}, a difference of "
                         f"{final['cv_mean'] - intended['cv']:+.4g}.")
        lines += _rescore_lines(final.get("rescore"), metric)
        if final.get("refit_full_rows"):
            lines.append(f"- After the holdout was scored, the same configuration was refit on all "
                         f"{final['refit_full_rows']} rows (holdout included) in "
                         f"{final['timings'].get('refit_full_s', 0):.2f} s: that is the shipped `model.onnx` "
                         "(export.refit_full=true). The holdout score below is the estimate for it; the holdout "
                         "rows are training rows of the shipped model, so it has no held-out score of its own.")
        if final.get("refit_full_skipped"):
            lines.append(f"- Not refit on all rows: {final['refit_full_skipped']}.")
        if final.get("holdout_metrics"):
            onnx_score = (f"{final['holdout_score_onnx']:.6g} (onnxruntime, the same model exported)"
                          if "holdout_score_onnx" in final else "no ONNX score")
            lines += ["", "### Holdout metrics (scored once)", "",
                      f"- {metric}: **{final['holdout_score']:.6g}** (Python pipeline), {onnx_score}", ""]
            lines += [f"| {k} | {v:.5g} |" for k, v in final["holdout_metrics"].items()]
            lines.insert(len(lines) - len(final["holdout_metrics"]), "| metric | value |\n|---|---|")
        lines += _class_lines(final, task)
        lines += calibration_lines(final)
        p = final.get("parity", {})
        if p:
            lines += [
                "", "## ONNX export and parity",
                f"- `model.onnx`: {final.get('model_bytes', 0) / 1024:.1f} KiB, one graph: raw columns in, "
                "`label` and (classifiers) `probabilities` out.",
                f"- Parity vs the Python pipeline on {p['rows_checked']} rows (holdout rows, and the same rows with "
                f"missing values and unseen categories injected): max diff {p['max_diff']:.3g} "
                f"({p['kind']}), tolerance {p['tolerance']:g}: **{'passed' if p['passed'] else 'FAILED'}**.",
            ]
            if "labels_checked" in p:
                lines.append(f"- `label` output checked against the Python decision rule on {p['labels_checked']} rows "
                             f"(rows within float noise of the decision boundary excluded): {p['label_mismatches']} "
                             "mismatches.")
            if "conformal" in p:
                c = p["conformal"]
                lines.append(f"- `{c['output']}` output checked against the same rule on the Python pipeline's "
                             f"output ({c['rows']} rows): **{'passed' if c['passed'] else 'FAILED'}**.")
        lines += _conformal_lines(final)
    lines += card_lines(m)  # sampled runs: sizes, row selection, learning curve
    rep = m.reproducible
    if rep:
        lines += ["", "## Reproducibility",
                  f"- Root seed {m.seed} feeds the split, folds, sampler and every estimator. "
                  + ("This run is reproducible: the same command gives the same leaderboard and model."
                     if rep["reproducible"]
                     else "This run is not exactly reproducible: " + "; ".join(rep["why_not"]) + ".")]
    lines += [
        "", "## Limitations",
        "- Scores are estimates from one holdout split and cross-validation on the rest; they carry sampling error "
        "(see the CV std in the leaderboard).",
        "- Columns the engine excluded (IDs, constants) are not used by the model.",
        "- The model reflects the training data, including any bias in how it was collected.",
    ]
    if profile["warnings"]:
        lines.append("- Read the data-quality warnings above before trusting the model.")
    lines.append("")
    return "\n".join(lines)
