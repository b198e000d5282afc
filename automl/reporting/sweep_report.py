"""report.html at the root of a --multirun sweep: the job x metric table, the holdout per dataset and
configuration, and when several configurations were swept, their average ranks across datasets.

Same rows as `automl compare` (automl/reporting/sweep_rows.py), drawn as one self-contained page."""
from __future__ import annotations

import logging
from pathlib import Path

from automl.io import SweepPaths, write_text
from automl.reporting.html import Figures, esc, page, table
from automl.reporting.sweep_rows import JOB_COLUMNS, average_ranks, collect, per_dataset

log = logging.getLogger("automl")


def build_sweep_report(sweep_dir: Path) -> str:
    """The sweep page's HTML: average ranks, holdout per dataset, and every job."""
    df = collect(sweep_dir)
    figs = Figures()
    parts = [f"<h1>automl sweep: {esc(sweep_dir.name)}</h1>",
             f"<p>{len(df)} jobs, {df['data'].nunique()} dataset(s), {df['seed'].nunique()} seed(s), "
             f"{df['config'].nunique()} configuration(s). holdout = score of the shipped model on rows the search "
             "never saw.</p>"]
    ranks = average_ranks(df)
    parts.append("<h2>Average rank across datasets (lower is better)</h2>")
    if ranks is None:
        parts.append("<p class=muted>One configuration in this sweep: nothing to rank. Sweep a setting "
                     "(e.g. <code>search.sampler=tpe,random</code>) to compare configurations.</p>")
    else:
        fig, ax = figs.new(6, 0.8 + 0.4 * len(ranks))
        ax.barh(ranks["config"][::-1], ranks["avg_rank"][::-1])
        ax.set(xlabel="average rank over (dataset, seed)", title="Configurations")
        parts.append(figs.img(fig, "average rank per configuration"))
        parts.append(table(ranks))
    parts.append("<h2>Holdout per dataset</h2>")
    per = per_dataset(df)
    grid = []
    for (data, metric), g in per.groupby(["data", "metric"]):
        g = g[g["mean"].notna()]  # every job of that configuration failed: in the table, not the chart
        if not len(g):
            continue
        fig, ax = figs.new(4.6, 1.3 + 0.35 * len(g))
        ax.barh(g["config"], g["mean"], xerr=g["std"].fillna(0.0))
        lo, hi = float((g["mean"] - g["std"].fillna(0)).min()), float((g["mean"] + g["std"].fillna(0)).max())
        pad = (hi - lo) * 0.3 or abs(hi) * 0.05 or 0.1
        ax.set_xlim(lo - pad, hi + pad)
        better = "higher" if bool(df.loc[df["metric"] == metric, "greater_is_better"].iloc[0]) else "lower"
        ax.set(xlabel=f"holdout {metric}, mean over seeds\n({better} is better)", title=str(data))
        grid.append(figs.img(fig, f"holdout on {data}"))
    parts.append("<div class=grid>" + "".join(grid) + "</div>")
    parts.append(table(per))
    parts.append("<h2>Jobs</h2>")
    parts.append(table(df[JOB_COLUMNS]))
    parts.append("<p class=muted>Each job's own report.html is in its folder.</p>")
    return page("automl sweep", "".join(parts))


def write_sweep_report(sweep_dir: Path) -> Path | None:
    """Never fails the sweep: a report that cannot be built is a warning."""
    out = SweepPaths(sweep_dir).report
    try:
        write_text(out, build_sweep_report(sweep_dir))
        return out
    except Exception as e:
        log.warning("sweep report.html was not written: %s: %s", type(e).__name__, e)
        return None
