"""The model card's section on a run on several tables: the layout, whether aggregates are point in time,
the raw-table parity, and every synthesised feature the final model takes, with its definition."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from automl.data.relational import read_layout
from automl.io import RunPaths


def card_section(run_dir: Path, parity: dict[str, Any]) -> str:
    """Model-card section: the layout and every synthesised feature the final model takes, with its definition."""
    run = RunPaths(Path(run_dir))
    layout = read_layout(run.root)
    features_file = run.relational_features.relative_to(run.root).as_posix()
    tt = layout["target_table"]
    lines = ["", "## Features from related tables", "",
             f"Target table `{tt}`; tables: " + ", ".join(
                 f"`{n}` (index `{t['index']}`" + (f", time `{t['time_index']}`)" if t["time_index"] else ")")
                 for n, t in layout["tables"].items()) + ".",
             "Relationships: " + ", ".join(f"`{r['parent']}` -> `{r['child']}`" for r in layout["relationships"]) + ".",
             ("Aggregates are computed **point in time**: each row of the target table sees only related rows whose "
              f"time is at or before its own `{layout['tables'][tt]['time_index']}` (featuretools cutoff times)."
              if layout["point_in_time"] else
              "**Not point in time**: the target table has no time_index, so aggregates use every related row."),
             "`automl predict --model RUN --tables name=path ...` recomputes them from raw tables with the saved "
             f"definitions (`{features_file}`, featuretools JSON) before the ONNX graph runs."]
    if parity:
        lines.append(f"Recomputed from the raw tables: {parity['aggregate_features']} aggregate features, "
                     f"max abs difference {parity['max_abs_diff']:.3g}, "
                     f"ONNX predictions max abs difference {parity.get('onnx_max_abs_diff', float('nan')):.3g} "
                     f"({'passed' if parity['passed'] else 'FAILED'}).")
    used = [d for d in layout["features"] if d["name"] in set(parity.get("used", []))]
    lines += ["", f"{len(used)} synthesised feature(s) are inputs of the final model:", "",
              "| feature | definition |", "|---|---|"]
    lines += [f"| `{d['name']}` | {d['definition'].replace('|', '/')} |" for d in used]
    return "\n".join(lines) + "\n"
