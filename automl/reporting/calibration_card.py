"""Calibration (task.calibration) in the model card and report.html: the method chosen on cross-fitted
out-of-fold log loss, Brier score and expected calibration error before and after on the holdout, and the
reliability diagram."""
from __future__ import annotations

from typing import Any

from automl.reporting.html import Figures, esc


def _summary(c: dict[str, Any]) -> str:
    losses = c.get("oof_log_loss") or {}
    tried = ", ".join(f"{k} {v:.4g}" for k, v in losses.items())
    return (f"method **{c['method']}**" + (f" ({c['why']})" if c.get("why") else "")
            + (f", chosen on cross-fitted out-of-fold log loss ({tried})" if tried else ""))


def card_lines(final: dict[str, Any]) -> list[str]:
    c = final.get("calibration")
    if not c:
        return []
    out = ["", "## Probability calibration",
           f"- {_summary(c)}" + ("; applied inside the graph." if c["method"] != "none" else ".")]
    b, a = c.get("holdout_before"), c.get("holdout_after")
    if b and a:
        out.append(f"- Holdout Brier score {b['brier']:.4f} -> {a['brier']:.4f}, expected calibration error "
                   f"{b['ece']:.4f} -> {a['ece']:.4f} (uncalibrated -> shipped).")
    return out


def report_part(final: dict[str, Any], figs: Figures | None) -> list[str]:
    c = final.get("calibration")
    if not c:
        return []
    parts = ["<h3>Calibration</h3>", f"<p>{esc(_summary(c).replace('**', ''))}.</p>"]
    b, a = c.get("holdout_before"), c.get("holdout_after")
    if b and a:
        parts.append(f"<p>Holdout Brier score {b['brier']:.4f} &rarr; {a['brier']:.4f}; expected calibration "
                     f"error {b['ece']:.4f} &rarr; {a['ece']:.4f}.</p>")
        if figs is not None:
            fig, ax = figs.new(4.2, 3.6)
            ax.plot([0, 1], [0, 1], ls=":", color="grey", label="perfect")
            for name, r in (("uncalibrated", b), ("shipped", a)):
                ax.plot([x["confidence"] for x in r["bins"]], [x["accuracy"] for x in r["bins"]], marker="o",
                        label=f"{name} (ECE {r['ece']:.3f})")
            ax.set(xlabel="confidence (top class)", ylabel="accuracy", title="Reliability on the holdout")
            ax.legend(fontsize=8)
            parts.append(figs.img(fig, "reliability diagram"))
    return parts
