"""report.html: the run at a glance, for people who would rather look than read.

Self-contained (images inline as PNG data URIs, no script, no network). Built from the run folder
alone (manifest, profile, leaderboard, parity, holdout predictions and labels, the study journal),
so `automl report RUN_DIR` rebuilds it. Its time counts in the run's budget: with little time left
the plots are left out and the page says so.
"""
from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automl.io import RunPaths, write_text
from automl.manifest import Manifest, read_manifest
from automl.reporting.calibration_card import report_part as calibration_part
from automl.reporting.front import front_part
from automl.reporting.holdout import holdout_figures
from automl.reporting.html import Figures, esc, fmt, page, table
from automl.reporting.importance import hyperparameter_importance, load_study
from automl.reporting.model_card import interval_scale_line

log = logging.getLogger("automl")

Room = Callable[..., bool]  # room(what, need_s=0.5): may this plot group still be drawn?


def _header(m: Manifest, final: dict[str, Any]) -> list[str]:
    task, metric = m.task, m.metric
    title = f"{m.data['name']} &rarr; {esc(m.target)}"
    kpis = [("status", m.status), ("task", task), (f"CV {metric}", fmt(final.get("cv_mean"))),
            (f"holdout {metric}", fmt(final.get("holdout_score"))),
            ("holdout via ONNX", fmt(final.get("holdout_score_onnx"))),
            ("model", final.get("family", "") if final.get("kind") != "ensemble"
             else f"{'stacked ' if final.get('stacker') else ''}ensemble of {len(final.get('members', []))}"),
            ("time used", f"{m.budget.get('used_s', 0):.1f} of {m.budget['time_s']:.0f} s")]
    parts = [f"<h1>automl run: {title}</h1><p class=muted>{esc(m.finished_at)} &middot; seed "
             f"{m.seed} &middot; engine {esc(m.engine_version)}</p>",
             "".join(f"<div class=kpi>{esc(k)}<b>{esc(v)}</b></div>" for k, v in kpis)]
    if m.error:
        parts.append(f"<p class=warn>{esc(m.error)}</p>")
    parts.append("<!--nav-->")  # links to the sections present, filled in at the end
    return parts


def _data(profile: dict[str, Any]) -> list[str]:
    parts = ["<h2 id=data>Data</h2>"]
    if profile:
        parts.append(f"<p>{profile['n_rows']} rows, {profile['n_columns']} columns, {profile['n_features']} used as "
                     f"features; {profile.get('duplicate_rows', 0)} duplicate rows.</p>")
        v = profile.get("validation")
        if v:
            parts.append(f"<p>Split ({esc(v['split'])}): {esc(v['how'])}. Why: {esc(v['why'])}.</p>")
            if v.get("scoring_how"):
                parts.append(f"<p>Trials scored by {esc(v['scoring_how'])}. Why: {esc(v['scoring_why'])}.</p>")
        warns = profile.get("warnings", [])
        parts.append("<ul>" + "".join(f"<li class=warn>{esc(w)}</li>" for w in warns) + "</ul>" if warns
                     else "<p>No data-quality warnings.</p>")
        cols = pd.DataFrame([{"column": c["name"], "role": c["role"], "missing %": c.get("missing_pct"),
                              "distinct": c.get("cardinality"), "note": c.get("note", c.get("reason", ""))}
                             for c in profile.get("columns", [])])
        if len(cols):
            parts.append(table(cols))
    return parts


def _search(m: Manifest, lb: pd.DataFrame, chosen: Any, figs: Figures | None, room: Room) -> list[str]:
    metric, greater = m.metric, bool(m.greater_is_better)
    parts = ["<h2 id=search>Search</h2>"]
    s = m.search
    scoring = "one inner split" if s.get("cv_folds") == 1 else f"{s.get('cv_folds', '?')}-fold CV"
    parts.append(f"<p>{s.get('completed', 0)} trials completed, {s.get('failed', 0)} failed, {s.get('pruned', 0)} "
                 f"pruned or skipped, {scoring} on {s.get('search_rows', '?')} rows, "
                 f"{s.get('n_workers', 1)} worker(s); stopped: {esc(s.get('stopped_because', ''))}.</p>")
    done = lb[lb["cv_mean"].notna() & (lb["trial"].astype(str) != "ensemble")].copy() if len(lb) else lb
    if len(done) and (done["family"] != "baseline").any():
        # the constant baseline is far off the scale of the others: named in a note, not plotted
        base = done[done["family"] == "baseline"]["cv_mean"]
        done = done[done["family"] != "baseline"]
        if len(base):
            parts.append(f"<p class=muted>Constant baseline: CV {metric} {fmt(float(base.iloc[0]))} (not plotted).</p>")
    if len(done) and room("optimisation history"):
        assert figs is not None  # room() is False when there are no figures
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
        parts.append(table(top, highlight=chosen, key="trial"))
        if len(rest):  # the rest one click away (<details>, no script)
            parts.append(f"<details><summary>trials ranked 11 to {10 + len(rest)}</summary>"
                         f"{table(rest, highlight=chosen, key='trial')}</details>")
    return parts


def _hyperparameters(paths: RunPaths, final: dict[str, Any], greater: bool, study: Any, figs: Figures | None,
                     room: Room) -> list[str]:
    family = final.get("family") if final.get("kind") == "single" else (
        final.get("members") or [{}])[0].get("family")
    if not (family and room("hyperparameter importance", 1.0)):
        return []
    assert figs is not None  # room() is False when there are no figures
    parts = ["<h2 id=hyperparameters>Which hyperparameters mattered</h2>"]
    try:
        st = study if study is not None else load_study(paths)
        imp, how = hyperparameter_importance(st, family, greater) if st is not None else ({}, "no study found")
    except Exception as e:  # importance is a view, never a reason to fail the report
        imp, how = {}, f"could not be computed ({type(e).__name__}: {e})"
    if imp:
        fig, ax = figs.new(6, 0.8 + 0.3 * min(len(imp), 15))
        items = list(imp.items())[:15][::-1]
        ax.barh([k for k, _ in items], [v for _, v in items])
        ax.set(xlabel="importance (share of variance explained)", title=how)
        parts.append(figs.img(fig, "hyperparameter importance"))
    else:
        parts.append(f"<p class=muted>{esc(how)}.</p>")
    return parts


def _holdout(paths: RunPaths, m: Manifest, final: dict[str, Any], figs: Figures | None,
             room: Room) -> list[str]:
    if final:
        parts = ["<h2 id=holdout>Holdout</h2>"]
    else:
        parts = ["<h2 id=holdout>Holdout and model</h2><p class=warn>No model was shipped, so nothing was scored on "
                 "the holdout or exported; the error above and leaderboard.csv say why.</p>"]
    hm = final.get("holdout_metrics") or {}
    if hm:
        parts.append(table(pd.DataFrame([hm])))
    if paths.holdout_predictions.exists() and paths.holdout_labels.exists() and room("holdout curves"):
        assert figs is not None  # room() is False when there are no figures
        pred, y = np.load(paths.holdout_predictions).astype(np.float64), np.load(paths.holdout_labels)
        parts.append(holdout_figures(figs, m.task, y, pred, m.classes or [],
                                     final.get("decision_threshold")))
        if final.get("refit_full_rows"):
            parts.append("<p class=muted>Curves are of the pipeline fitted on the search rows and scored once on the "
                         "holdout; the shipped model.onnx is the same configuration refit on all rows.</p>")
    parts += calibration_part(final, figs if final.get("calibration") and room("reliability diagram") else None)
    pi = final.get("permutation_importance")
    if pi and pi.get("importances"):
        parts.append("<h3>Permutation feature importance (holdout)</h3>")
        rows = pi["importances"][:20]
        if room("permutation importance"):
            assert figs is not None  # room() is False when there are no figures
            fig, ax = figs.new(6, 0.8 + 0.3 * len(rows))
            ax.barh([r["column"] for r in rows][::-1], [r["importance"] for r in rows][::-1],
                    xerr=[r["std"] for r in rows][::-1])
            ax.set(xlabel=f"drop in holdout {m.metric} when shuffled", title="Permutation importance")
            parts.append(figs.img(fig, "permutation importance"))
        parts.append(f"<p class=muted>{pi['columns_covered']} of {pi['columns_total']} columns, {pi['rows']} holdout "
                     f"rows, up to {max(r['repeats'] for r in pi['importances'])} shuffles each, in "
                     f"{pi['seconds']} s.</p>")
    return parts


def _onnx(paths: RunPaths, final: dict[str, Any]) -> list[str]:
    if not final:
        return []
    parity = final.get("parity") or {}
    lat = final.get("latency") or {}
    rows = [("file", paths.model.name), ("size", f"{final.get('model_bytes', 0) / 1024:.1f} KiB"),
            ("sha256", final.get("model_sha256", "")),
            ("parity", f"{'passed' if parity.get('passed') else 'FAILED'}: max diff {parity.get('max_diff')} "
                       f"({parity.get('kind', '')}, tolerance {parity.get('tolerance')}) on "
                       f"{parity.get('rows_checked')} rows, {parity.get('rows_with_injected_missing_or_unseen')} "
                       f"with injected missing values or unseen categories")]
    if lat:
        rows += [("single-row latency", f"median {lat['single_row_ms_median']} ms, p99 {lat['single_row_ms_p99']} "
                                        f"ms (onnxruntime, in process, {lat['single_row_calls']} calls)"),
                 ("batch throughput", f"{lat['batch_rows_per_s']:,.0f} rows/s ({lat['batch_rows']}-row batch)")]
    conf, hold = final.get("conformal"), final.get("conformal_holdout") or {}
    if conf:
        size = (f"mean width {hold['mean_width']:.5g}" if "mean_width" in hold
                else f"mean set size {hold.get('mean_set_size', float('nan')):.3g}")
        rows += [("conformal output", f"{(parity.get('conformal') or {}).get('output', '')}: target coverage "
                                      f"{conf['coverage']:g} ({conf['method']}, {conf['calibration_rows']} rows)"),
                 *([("interval width", interval_scale_line(conf))] if "scale" in conf else []),
                 ("holdout coverage", f"{hold.get('coverage', float('nan')):.3f} on {hold.get('rows', 0)} rows, "
                                      f"{size}")]
    return ["<h2 id=onnx>ONNX model</h2>", table(pd.DataFrame(rows, columns=["", "value"]))]


def build_report(run_dir: Path, manifest: Manifest | None = None, study: Any = None,
                 time_left_s: float = float("inf")) -> str:
    """The report's HTML. With under ~1.2 s left, tables only (no plotting library is loaded)."""
    t0 = time.perf_counter()
    paths = RunPaths(run_dir)
    m = manifest if manifest is not None else read_manifest(paths)
    profile = json.loads(paths.profile.read_text()) if paths.profile.exists() else {}
    lb = pd.read_csv(paths.leaderboard) if paths.leaderboard.exists() else pd.DataFrame()
    final = m.final
    plots = time_left_s > 1.2  # matplotlib's import and ~8 figures took ~1 s here
    figs = Figures() if plots else None
    skipped: list[str] = []

    def room(what: str, need_s: float = 0.5) -> bool:
        """Plots only while the budget lasts: each group checks the clock, so a slow machine gets fewer."""
        if figs is None:
            return False
        if time.perf_counter() - t0 < time_left_s - need_s:
            return True
        skipped.append(what)
        return False

    parts = _header(m, final) + _data(profile) + _search(m, lb, final.get("trial", ""), figs, room)
    parts += _hyperparameters(paths, final, bool(m.greater_is_better), study, figs, room)
    parts += _holdout(paths, m, final, figs, room) + _onnx(paths, final)
    parts += front_part(lb, final, m.metric, figs, room)
    if not plots:
        parts.append("<p class=warn>Plots were left out: the run's time budget had no room for them "
                     "(rebuild with <code>automl report RUN_DIR</code>).</p>")
    elif skipped:
        parts.append(f"<p class=warn>Left out to stay within the run's time budget: {esc(', '.join(skipped))} "
                     "(rebuild with <code>automl report RUN_DIR</code>).</p>")
    parts.append(f"<p class=muted>Built in {time.perf_counter() - t0:.2f} s. See model_card.md, leaderboard.csv, "
                 f"profile.json and manifest.json in this folder.</p>")
    body = "".join(parts)
    nav = "".join(f"<a href='#{k}'>{v.split(' (')[0]}</a>" for k, v in re.findall(r"<h[23] id=(\w+)>([^<]+)<", body))
    body = body.replace("<!--nav-->", f"<nav class=muted>{nav}</nav>", 1)
    return page(f"automl: {esc(m.data['name'])}", body)


def write_report(run_dir: Path, manifest: Manifest | None = None, study: Any = None,
                 time_left_s: float = float("inf")) -> float:
    """Write report.html; returns its seconds. A report that cannot be built never fails the run."""
    t = time.perf_counter()
    try:
        write_text(RunPaths(run_dir).report, build_report(run_dir, manifest, study, time_left_s))
    except Exception as e:
        log.warning("report.html was not written: %s: %s", type(e).__name__, e)
    return time.perf_counter() - t

