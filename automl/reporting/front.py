"""report.html's deployment section: score against single-row latency and graph size for the trials whose
graph the search measured, the Pareto front marked (leaderboard.csv `front`), and the shipped graph's own
measurement with any constraints and lighter variants."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from automl.reporting.html import Figures, esc, table


def front_part(lb: pd.DataFrame, final: dict[str, Any], metric: str, figs: Figures | None,
               room: Callable[..., bool]) -> list[str]:
    parts: list[str] = []
    d = final.get("deployment")
    cols = {"onnx_kb", "onnx_ms_p50", "front"}
    pts = (lb[lb["cv_mean"].notna() & lb["onnx_kb"].notna() & lb["onnx_ms_p50"].notna()].copy()
           if len(lb) and cols <= set(lb.columns) else pd.DataFrame())
    if not d and not len(pts):
        return parts
    parts.append("<h2 id=deployment>Deployment cost</h2>")
    if d:
        m = d["machine"]
        parts.append(f"<p>model.onnx: single row p50 {d['latency_ms_p50']:.3g} ms (p90 {d['latency_ms_p90']:.3g}), "
                     f"1000 rows {d['batch_ms_per_1k']:.3g} ms, {d['model_mb']:.3g} MB; {esc(d['method'])}; on "
                     f"{esc(m['cpu'])}, {m['cores']} cores.</p>")
    c = final.get("constraints")
    if c:
        parts.append(f"<p>Constraints {esc(c['limits'])}: bound by {esc(', '.join(c['bound_by']) or 'none')}"
                     + (f", CV cost {c['cv_cost']:.4g}" if "cv_cost" in c else "") + ".</p>")
        if c["refused"]:
            parts.append(table(pd.DataFrame(c["refused"])))
    if final.get("variants"):
        parts.append(table(pd.DataFrame(final["variants"]).drop(columns=["file", "tried", "parity"], errors="ignore")))
    if len(pts) and room("Pareto front"):
        assert figs is not None
        on = pts[pts["front"].astype(bool)]
        grid = []
        for x, label in (("onnx_ms_p50", "single-row p50, ms (search's graph)"), ("onnx_kb", "graph size, kB")):
            fig, ax = figs.new()
            ax.scatter(pts[x], pts["cv_mean"], s=12, alpha=0.5, label="trial")
            ax.scatter(on[x], on["cv_mean"], s=28, color="C1", label="Pareto front")
            shipped = pts[pts["trial"].astype(str) == str(final.get("trial"))]
            if len(shipped):
                ax.scatter(shipped[x], shipped["cv_mean"], s=70, marker="*", color="C3", label="shipped")
            ax.set_xscale("log")
            ax.set(xlabel=label, ylabel=f"CV {metric}", title=f"CV {metric} against {label.split(',')[0]}")
            ax.legend(fontsize=7)
            grid.append(figs.img(fig, f"Pareto front: CV against {label.split(',')[0]}"))
        parts.append("<div class=grid>" + "".join(grid) + "</div>")
        show = [k for k in ("trial", "family", "cv_mean", "onnx_ms_p50", "onnx_kb") if k in on.columns]
        parts.append("<p>The front (<code>automl export RUN_DIR --trial N --out DIR</code> ships any of them):</p>"
                     + table(on[show]))
    return parts
