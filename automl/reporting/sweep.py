"""A Hydra callback: after a --multirun sweep, write summary.csv at the sweep root (one row per job)."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

log = logging.getLogger("automl")


def summarize(sweep_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for manifest in sorted(sweep_dir.glob("*/manifest.json")):
        m = json.loads(manifest.read_text())
        final = m.get("final") or {}
        rows.append({
            "job": manifest.parent.name, "data": m["data"]["name"], "seed": m["seed"], "task": m["task"],
            "metric": m["metric"], "status": m["status"], "model": final.get("family", ""),
            "cv": final.get("cv_mean"), "holdout": final.get("holdout_score"),
            "trials": m["search"]["trials_total"], "time_s": m["budget"].get("used_s"),
            "budget_s": m["budget"]["time_s"],
        })
    return rows


class SweepSummary(Callback):
    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        import pandas as pd

        from automl.io import write_text

        sweep_dir = Path(config.hydra.sweep.dir)
        rows = summarize(sweep_dir)
        if rows:
            write_text(sweep_dir / "summary.csv", pd.DataFrame(rows).to_csv(index=False))
            log.info("sweep summary: %s", sweep_dir / "summary.csv")
            from automl.reporting.sweep_report import write_sweep_report

            if write_sweep_report(sweep_dir):
                log.info("sweep report: %s (automl compare %s prints the same tables)", sweep_dir / "report.html",
                         sweep_dir)
