"""`automl compare SWEEP_DIR`: one table over the jobs of a --multirun sweep, and average ranks.

The rows and ranks come from automl/reporting/sweep_rows.py; this module writes them as markdown.
With several configurations, each is ranked within every (dataset, seed) on the holdout score and the
ranks are averaged across datasets and seeds (AMLB-style). The verb (automl/commands/compare.py) writes
them as compare.csv and compare.md in the sweep folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from automl.reporting.sweep_rows import JOB_COLUMNS, average_ranks, per_dataset

if TYPE_CHECKING:
    import pandas as pd


def markdown_table(df: pd.DataFrame) -> str:
    """A markdown table; floats to five significant digits, missing values blank."""
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


def render(sweep_dir: Path, df: pd.DataFrame) -> str:
    """compare.md: the jobs, the holdout per dataset over seeds, and the configurations' average ranks."""
    table = df[JOB_COLUMNS]
    out = [f"# Sweep comparison: {sweep_dir}", "", f"{len(df)} jobs, {df['data'].nunique()} dataset(s), "
           f"{df['seed'].nunique()} seed(s), {df['config'].nunique()} configuration(s). holdout = score of the "
           "shipped model on rows the search never saw; best_family = best single family by CV; "
           "time_s = wall clock used of budget_s.", "", "## Jobs", "", markdown_table(table), "",
           "## Per dataset (over seeds)", "", markdown_table(per_dataset(df)), ""]
    ranks = average_ranks(df)
    out += ["## Average rank (lower is better)", ""]
    if ranks is None:
        out += ["One configuration in this sweep: nothing to rank. Sweep a setting (e.g. "
                "`search.sampler=tpe,random` or `budget.time_s=30,60`) to compare configurations.", ""]
    else:
        out += ["Each configuration is ranked within every (dataset, seed) on the holdout score, then averaged.",
                "", markdown_table(ranks), ""]
    return "\n".join(out)

