"""report.html: the run at a glance, for people who would rather look than read.

Self-contained (images inline as PNG data URIs, no script, no network). Built from the run folder
alone (manifest, profile, leaderboard, parity, holdout predictions and labels, the study journal),
so `automl report RUN_DIR` rebuilds it. Its time counts in the run's budget: with little time left
the plots are left out and the page says so.
"""
from __future__ import annotations

import base64
import html
import io
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger("automl")

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;
padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0} td,th{border:1px solid #ddd;padding:3px 7px;
text-align:left;vertical-align:top} th{background:#f4f4f4} tr.chosen td{background:#eef7ee}
.kpi{display:inline-block;border:1px solid #ddd;border-radius:6px;padding:.5em 1em;margin:.3em;min-width:9em}
.kpi b{display:block;font-size:1.3em} .warn{color:#8a5a00} .muted{color:#777;font-size:.85em}
.grid{display:flex;flex-wrap:wrap;gap:1em} .grid figure{margin:0} img{max-width:100%;height:auto}
.scroll{overflow-x:auto} nav a{margin-right:1em}
summary{cursor:pointer;color:#555;font-size:.9em}
"""


def _esc(v: Any) -> str:
    return html.escape(str(v))


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return ""
    if isinstance(v, float | np.floating):
        return f"{v:.5g}"
    return str(v)


def _table(df: pd.DataFrame, highlight: Any = None, key: str = "") -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in df.columns)
    body = []
    for _, r in df.iterrows():
        cls = ' class="chosen"' if key and highlight is not None and str(r[key]) == str(highlight) else ""
        cells = "".join(f"<td>{_esc(_fmt(r[c]) if not pd.isna(r[c]) else '')[:160]}</td>" for c in df.columns)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<div class=scroll><table><tr>{head}</tr>{''.join(body)}</table></div>"


class _Figures:
    """matplotlib (Agg) figures as inline PNG <img> tags."""

    def __init__(self) -> None:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt

        self.plt = plt

    def new(self, w: float = 5.0, h: float = 3.4) -> Any:
        return self.plt.subplots(figsize=(w, h), dpi=90)

    def img(self, fig: Any, alt: str) -> str:
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png")
        self.plt.close(fig)
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        return f'<figure><img alt="{_esc(alt)}" src="data:image/png;base64,{data}"></figure>'


def _load_study(run_dir: Path) -> Any:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = run_dir / "study.journal"
    if not path.exists():
        return None
    storage = JournalStorage(JournalFileBackend(str(path)))
    names = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=names[0], storage=storage) if names else None


def _importance(study: Any, family: str, greater: bool) -> tuple[dict[str, float], str]:
    """fANOVA importance of one family's hyperparameters (and preprocessing choices), over its completed
    trials; Optuna's evaluator needs one parameter space, so one family at a time: the chosen one, or the
    most tried one when the chosen one has too few trials."""
    import optuna
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=[TrialState.COMPLETE])
    counts = pd.Series([t.params.get("family") for t in complete]).value_counts()
    if counts.get(family, 0) < 6 and len(counts) and counts.iloc[0] >= 6:
        family = str(counts.index[0])
    trials = [t for t in complete if t.params.get("family") == family]
    if len(trials) < 6:
        return {}, f"{len(trials)} completed {family} trial(s): too few to say which hyperparameters mattered"
    common = set.intersection(*(set(t.params) for t in trials)) - {"family"}
    varied = [p for p in sorted(common) if len({json.dumps(t.params[p], default=str) for t in trials}) > 1]
    if not varied:
        return {}, f"the {family} trials did not vary any hyperparameter"
    sub = optuna.create_study(direction="maximize" if greater else "minimize")
    for t in trials:
        sub.add_trial(optuna.trial.create_trial(
            params={p: t.params[p] for p in varied}, distributions={p: t.distributions[p] for p in varied},
            value=t.value))
    ev = optuna.importance.FanovaImportanceEvaluator(n_trees=32, seed=0)
    return optuna.importance.get_param_importances(sub, evaluator=ev), f"fANOVA over {len(trials)} {family} trials"


def _curves(figs: _Figures, task: str, y: np.ndarray, pred: np.ndarray, classes: list[Any]) -> list[str]:
    from automl.reporting.curves import confusion, precision_recall, roc

    out = []
    if task == "regression":
        fig, ax = figs.new()
        ax.scatter(y, pred, s=8, alpha=0.5)
        lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], color="grey", lw=1)
        ax.set(xlabel="actual", ylabel="predicted", title="Holdout: predicted vs actual")
        out.append(figs.img(fig, "predicted vs actual"))
        fig, ax = figs.new()
        ax.scatter(pred, y - pred, s=8, alpha=0.5)
        ax.axhline(0, color="grey", lw=1)
        ax.set(xlabel="predicted", ylabel="actual - predicted", title="Holdout: residuals")
        out.append(figs.img(fig, "residuals"))
        return out
    proba = pred if pred.ndim == 2 else np.column_stack([1 - pred, pred])
    labels = proba.argmax(axis=1)
    cm = confusion(y, labels, proba.shape[1])
    fig, ax = figs.new(4.2 + 0.2 * len(classes), 3.6 + 0.2 * len(classes))
    ax.imshow(cm, cmap="Blues")
    names = [str(c) for c in classes]
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black")  # readable on dark cells
    ax.set(xlabel="predicted (most probable class)", ylabel="actual", title="Holdout: confusion matrix")
    out.append(figs.img(fig, "confusion matrix"))
    pairs = [(1, names[1])] if proba.shape[1] == 2 else list(enumerate(names))
    fig_roc, ax_roc = figs.new()
    fig_pr, ax_pr = figs.new()
    for k, name in pairs:
        yk = (y == k).astype(int)
        if yk.min() == yk.max():
            continue
        fpr, tpr, area = roc(yk, proba[:, k])
        ax_roc.plot(fpr, tpr, label=f"{name} (AUC {area:.3f})")
        prec, rec = precision_recall(yk, proba[:, k])
        ax_pr.plot(rec, prec, label=f"{name} (base rate {yk.mean():.3f})")
    ax_roc.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="Holdout: ROC")
    ax_pr.set(xlabel="recall", ylabel="precision", title="Holdout: precision-recall")
    for ax in (ax_roc, ax_pr):
        ax.legend(fontsize=7)
    out += [figs.img(fig_roc, "ROC curve"), figs.img(fig_pr, "precision-recall curve")]
    return out


def build_report(run_dir: Path, manifest: dict[str, Any] | None = None, study: Any = None,
                 time_left_s: float = float("inf")) -> str:
    """The report's HTML. With under ~1.2 s left, tables only (no plotting library is loaded)."""
    t0 = time.perf_counter()
    m = manifest if manifest is not None else json.loads((run_dir / "manifest.json").read_text())
    profile = json.loads((run_dir / "profile.json").read_text()) if (run_dir / "profile.json").exists() else {}
    lb = pd.read_csv(run_dir / "leaderboard.csv") if (run_dir / "leaderboard.csv").exists() else pd.DataFrame()
    final = m.get("final") or {}
    task, metric, greater = m["task"], m["metric"], bool(m["greater_is_better"])
    plots = time_left_s > 1.2  # matplotlib's import and ~8 figures took ~1 s here
    figs = _Figures() if plots else None
    skipped: list[str] = []

    def room(what: str, need_s: float = 0.5) -> bool:
        """Plots only while the budget lasts: each group checks the clock, so a slow machine gets fewer."""
        if figs is None:
            return False
        if time.perf_counter() - t0 < time_left_s - need_s:
            return True
        skipped.append(what)
        return False

    parts: list[str] = []
    chosen = final.get("trial", "")
    title = f"{m['data']['name']} &rarr; {_esc(m['target'])}"
    kpis = [("status", m["status"]), ("task", task), (f"CV {metric}", _fmt(final.get("cv_mean"))),
            (f"holdout {metric}", _fmt(final.get("holdout_score"))),
            ("holdout via ONNX", _fmt(final.get("holdout_score_onnx"))),
            ("model", final.get("family", "") if final.get("kind") != "ensemble"
             else f"ensemble of {len(final.get('members', []))}"),
            ("time used", f"{m['budget'].get('used_s', 0):.1f} of {m['budget']['time_s']:.0f} s")]
    parts.append(f"<h1>automl run: {title}</h1><p class=muted>{_esc(m.get('finished_at', ''))} &middot; seed "
                 f"{m['seed']} &middot; engine {_esc(m.get('engine_version', ''))}</p>")
    parts.append("".join(f"<div class=kpi>{_esc(k)}<b>{_esc(v)}</b></div>" for k, v in kpis))
    if m.get("error"):
        parts.append(f"<p class=warn>{_esc(m['error'])}</p>")
    parts.append("<!--nav-->")  # links to the sections present, filled in at the end

    # data
    parts.append("<h2 id=data>Data</h2>")
    if profile:
        parts.append(f"<p>{profile['n_rows']} rows, {profile['n_columns']} columns, {profile['n_features']} used as "
                     f"features; {profile.get('duplicate_rows', 0)} duplicate rows.</p>")
        warns = profile.get("warnings", [])
        parts.append("<ul>" + "".join(f"<li class=warn>{_esc(w)}</li>" for w in warns) + "</ul>" if warns
                     else "<p>No data-quality warnings.</p>")
        cols = pd.DataFrame([{"column": c["name"], "role": c["role"], "missing %": c.get("missing_pct"),
                              "distinct": c.get("cardinality"), "note": c.get("note", c.get("reason", ""))}
                             for c in profile.get("columns", [])])
        if len(cols):
            parts.append(_table(cols))

    # search
    parts.append("<h2 id=search>Search</h2>")
    s = m.get("search", {})
    parts.append(f"<p>{s.get('completed', 0)} trials completed, {s.get('failed', 0)} failed, {s.get('pruned', 0)} "
                 f"pruned or skipped, {s.get('cv_folds', '?')}-fold CV on {s.get('search_rows', '?')} rows, "
                 f"{s.get('n_workers', 1)} worker(s); stopped: {_esc(s.get('stopped_because', ''))}.</p>")
    done = lb[lb["cv_mean"].notna() & (lb["trial"].astype(str) != "ensemble")].copy() if len(lb) else lb
    if len(done) and (done["family"] != "baseline").any():
        # the constant baseline is far off the scale of the others: named in a note, not plotted
        base = done[done["family"] == "baseline"]["cv_mean"]
        done = done[done["family"] != "baseline"]
        if len(base):
            parts.append(f"<p class=muted>Constant baseline: CV {metric} {_fmt(float(base.iloc[0]))} (not plotted).</p>")
    if len(done) and room("optimisation history"):
        done["n"] = pd.to_numeric(done["trial"])
        done = done.sort_values("n")
        grid = []
        fig, ax = figs.new()
        ax.scatter(done["n"], done["cv_mean"], s=12, alpha=0.6, label="trial")
        best = done["cv_mean"].cummax() if greater else done["cv_mean"].cummin()
        ax.step(done["n"], best, where="post", color="C1", label="best so far")
        ax.set(xlabel="trial", ylabel=f"CV {metric}", title="Optimisation history")
        ax.legend(fontsize=7)
        grid.append(figs.img(fig, "optimisation history"))
        per = done.groupby("family")["cv_mean"].agg("max" if greater else "min").sort_values(ascending=not greater)
        fig, ax = figs.new()
        ax.barh(per.index[::-1], per.values[::-1])
        lo, hi = float(per.min()), float(per.max())
        pad = (hi - lo) * 0.3 or abs(hi) * 0.05 or 0.1
        ax.set_xlim(lo - pad, hi + pad)
        ax.set(xlabel=f"best CV {metric}", title="Best score per family")
        grid.append(figs.img(fig, "best score per family"))
        parts.append("<div class=grid>" + "".join(grid) + "</div>")
    if len(lb):
        show = [c for c in ("rank", "trial", "family", "preprocessing", "cv_mean", "cv_std", "holdout",
                            "ensemble_weight", "fit_s", "status", "error") if c in lb.columns]
        top, rest = lb[show].head(10), lb[show].iloc[10:60]
        parts.append(f"<h3 id=leaderboard>Leaderboard (top {len(top)} of {len(lb)}; every trial in leaderboard.csv)"
                     "</h3>")
        parts.append(_table(top, highlight=chosen, key="trial"))
        if len(rest):  # the rest one click away (<details>, no script)
            parts.append(f"<details><summary>trials ranked 11 to {10 + len(rest)}</summary>"
                         f"{_table(rest, highlight=chosen, key='trial')}</details>")

    # hyperparameter importance
    family = final.get("family") if final.get("kind") == "single" else (
        final.get("members") or [{}])[0].get("family")
    if family and room("hyperparameter importance", 1.0):
        parts.append("<h2 id=hyperparameters>Which hyperparameters mattered</h2>")
        try:
            st = study if study is not None else _load_study(run_dir)
            imp, how = _importance(st, family, greater) if st is not None else ({}, "no study found")
        except Exception as e:  # importance is a view, never a reason to fail the report
            imp, how = {}, f"could not be computed ({type(e).__name__}: {e})"
        if imp:
            fig, ax = figs.new(6, 0.8 + 0.3 * min(len(imp), 15))
            items = list(imp.items())[:15][::-1]
            ax.barh([k for k, _ in items], [v for _, v in items])
            ax.set(xlabel="importance (share of variance explained)", title=how)
            parts.append(figs.img(fig, "hyperparameter importance"))
        else:
            parts.append(f"<p class=muted>{_esc(how)}.</p>")

    # holdout
    if final:
        parts.append("<h2 id=holdout>Holdout</h2>")
    else:
        parts.append("<h2 id=holdout>Holdout and model</h2><p class=warn>No model was shipped, so nothing was scored on "
                     "the holdout or exported; the error above and leaderboard.csv say why.</p>")
    hm = final.get("holdout_metrics") or {}
    if hm:
        parts.append(_table(pd.DataFrame([hm])))
    pred_f, y_f = run_dir / "holdout_predictions.npy", run_dir / "holdout_labels.npy"
    if pred_f.exists() and y_f.exists() and room("holdout curves"):
        pred, y = np.load(pred_f).astype(np.float64), np.load(y_f)
        classes = m.get("classes") or []
        parts.append("<div class=grid>" + "".join(_curves(figs, task, y, pred, classes)) + "</div>")
        if final.get("refit_full_rows"):
            parts.append("<p class=muted>Curves are of the pipeline fitted on the search rows and scored once on the "
                         "holdout; the shipped model.onnx is the same configuration refit on all rows.</p>")
    pi = final.get("permutation_importance")
    if pi and pi.get("importances"):
        parts.append("<h3>Permutation feature importance (holdout)</h3>")
        rows = pi["importances"][:20]
        if room("permutation importance"):
            fig, ax = figs.new(6, 0.8 + 0.3 * len(rows))
            ax.barh([r["column"] for r in rows][::-1], [r["importance"] for r in rows][::-1],
                    xerr=[r["std"] for r in rows][::-1])
            ax.set(xlabel=f"drop in holdout {metric} when shuffled", title="Permutation importance")
            parts.append(figs.img(fig, "permutation importance"))
        parts.append(f"<p class=muted>{pi['columns_covered']} of {pi['columns_total']} columns, {pi['rows']} holdout "
                     f"rows, up to {max(r['repeats'] for r in pi['importances'])} shuffles each, in "
                     f"{pi['seconds']} s.</p>")

    # ONNX
    if final:
        parts.append("<h2 id=onnx>ONNX model</h2>")
        parity = final.get("parity") or {}
        lat = final.get("latency") or {}
        onnx_rows = [("file", "model.onnx"), ("size", f"{final.get('model_bytes', 0) / 1024:.1f} KiB"),
                     ("sha256", final.get("model_sha256", "")),
                     ("parity", f"{'passed' if parity.get('passed') else 'FAILED'}: max diff {parity.get('max_diff')} "
                                f"({parity.get('kind', '')}, tolerance {parity.get('tolerance')}) on "
                                f"{parity.get('rows_checked')} rows, {parity.get('rows_with_injected_missing_or_unseen')} "
                                f"with injected missing values or unseen categories")]
        if lat:
            onnx_rows += [("single-row latency", f"median {lat['single_row_ms_median']} ms, p99 {lat['single_row_ms_p99']} "
                                                 f"ms (onnxruntime, in process, {lat['single_row_calls']} calls)"),
                          ("batch throughput", f"{lat['batch_rows_per_s']:,.0f} rows/s ({lat['batch_rows']}-row batch)")]
        parts.append(_table(pd.DataFrame(onnx_rows, columns=["", "value"])))
    if not plots:
        parts.append("<p class=warn>Plots were left out: the run's time budget had no room for them "
                     "(rebuild with <code>automl report RUN_DIR</code>).</p>")
    elif skipped:
        parts.append(f"<p class=warn>Left out to stay within the run's time budget: {_esc(', '.join(skipped))} "
                     "(rebuild with <code>automl report RUN_DIR</code>).</p>")
    parts.append(f"<p class=muted>Built in {time.perf_counter() - t0:.2f} s. See model_card.md, leaderboard.csv, "
                 f"profile.json and manifest.json in this folder.</p>")
    body = "".join(parts)
    nav = "".join(f"<a href='#{k}'>{v.split(' (')[0]}</a>" for k, v in re.findall(r"<h[23] id=(\w+)>([^<]+)<", body))
    body = body.replace("<!--nav-->", f"<nav class=muted>{nav}</nav>", 1)
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>automl: {_esc(m['data']['name'])}"
            f"</title><style>{CSS}</style></head><body>{body}</body></html>\n")


def write_report(run_dir: Path, manifest: dict[str, Any] | None = None, study: Any = None,
                 time_left_s: float = float("inf")) -> float:
    """Write report.html; returns its seconds. A report that cannot be built never fails the run."""
    from automl.io import write_text

    t = time.perf_counter()
    try:
        write_text(run_dir / "report.html", build_report(run_dir, manifest, study, time_left_s))
    except Exception as e:
        log.warning("report.html was not written: %s: %s", type(e).__name__, e)
    return time.perf_counter() - t

