"""Deployment constraints in the final stage: every candidate graph that passed the parity gate is measured
(automl/export/measure.py) and refused when it breaks a limit of `constraints.*`; the ladder then falls to the
next-ranked candidate. The card's record says which limits bound the choice and what they cost in score."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from automl.config.schema import ConstraintsConfig
from automl.export.measure import measure

log = logging.getLogger("automl")
# constraint key -> the measurement it limits, and its unit
LIMITS = {"max_latency_ms": ("latency_ms_p50", "ms"), "max_model_mb": ("model_mb", "MB"),
          "max_batch_ms_per_1k": ("batch_ms_per_1k", "ms per 1000 rows")}


def limits_of(c: ConstraintsConfig) -> dict[str, float]:
    """The limits that are on (> 0)."""
    return {k: float(getattr(c, k)) for k in LIMITS if getattr(c, k) > 0}


def violations(measured: dict[str, Any], limits: dict[str, float]) -> list[str]:
    """The limits a measurement breaks, each as `key: value > limit unit`."""
    out = []
    for key, limit in limits.items():
        what, unit = LIMITS[key]
        if measured[what] > limit:
            out.append(f"{key}: {measured[what]:.4g} > {limit:g} {unit}")
    return out


@dataclass
class Gate:
    """The final stage's deployment check, for one run."""
    limits: dict[str, float]
    rows: pd.DataFrame  # raw model inputs the latency is measured on (the holdout's)
    schema: list[dict[str, str]]
    greater_is_better: bool
    refused: list[dict[str, Any]] = field(default_factory=list)
    last: dict[str, Any] | None = None  # the measurement of the last graph that met every limit

    def check(self, label: str, cv: float | None, model_bytes: bytes) -> str:
        """"" when the graph meets every limit, else why not (the candidate is recorded as refused)."""
        m = measure(model_bytes, self.rows, self.schema)
        broken = violations(m, self.limits)
        if broken:
            self.refused.append({"plan": label, "cv": cv, "broke": broken,
                                 **{k: m[k] for k in ("latency_ms_p50", "model_mb", "batch_ms_per_1k")}})
            log.info("constraints: %s refused (%s)", label, "; ".join(broken))
        else:
            self.last = m
        return "; ".join(broken)

    def report(self, shipped_cv: float | None) -> dict[str, Any]:
        """For the manifest and the card: the limits, the shipped graph's measurement, the candidates refused,
        which limits bound the choice and the CV score given up (positive: worse than the best refused)."""
        out: dict[str, Any] = {"limits": self.limits, "measured": self.last,
                               "refused": self.refused, "bound_by": sorted({b.split(":")[0] for r in self.refused
                                                                            for b in r["broke"]})}
        scores = [r["cv"] for r in self.refused if r["cv"] is not None]
        if scores and shipped_cv is not None:
            best = max(scores) if self.greater_is_better else min(scores)
            out["cv_cost"] = (best - shipped_cv) if self.greater_is_better else (shipped_cv - best)
        return out


def gate_for(c: ConstraintsConfig, X_hold: pd.DataFrame, X_search: pd.DataFrame, schema: list[dict[str, str]],
             greater_is_better: bool) -> Gate | None:
    """A Gate when any limit is on, measuring on the holdout rows (the search rows when there is no holdout)."""
    limits = limits_of(c)
    if not limits:
        return None
    return Gate(limits, X_hold if len(X_hold) else X_search, schema, greater_is_better)


def card_section(final: dict[str, Any]) -> str:
    """The model card's deployment section: what the graph costs, and what the constraints cost."""
    d, c, vs = final.get("deployment"), final.get("constraints"), final.get("variants") or []
    if not d and not c and not vs:
        return ""
    lines = ["", "## Deployment cost (measured on model.onnx)"]
    src = final.get("exported_from")
    if src:
        lines.append(f"- Exported with `automl export`: trial {src['trial']} of `{src['run_dir']}` (CV "
                     f"{src['cv_mean']:.5g}; that run shipped {src['run_shipped']}), refit with the trial's "
                     "parameters on the run's rows.")
    if d:
        mach = d["machine"]
        lines += [f"- Single row: p50 {d['latency_ms_p50']:.3g} ms, p90 {d['latency_ms_p90']:.3g} ms; 1000 rows in one "
                  f"call: {d['batch_ms_per_1k']:.3g} ms; size {d['model_mb']:.3g} MB.",
                  f"- Measured with {d['method']}, on {mach['cpu']} ({mach['cores']} cores, {mach['platform']}, "
                  f"onnxruntime {mach['onnxruntime']})."]
    if c:
        lines.append("- Constraints: " + ", ".join(f"{k} = {v:g}" for k, v in c["limits"].items()) + ".")
        if c["refused"]:
            lines.append(f"- Bound by {', '.join(c['bound_by'])}: {len(c['refused'])} better-ranked candidate(s) "
                         "refused:")
            lines += [f"  - {r['plan']} (CV {'-' if r['cv'] is None else format(r['cv'], '.5g')}): "
                      f"{'; '.join(r['broke'])}" for r in c["refused"]]
            if "cv_cost" in c:
                lines.append(f"- Cost in CV score against the best refused candidate: {c['cv_cost']:.4g}.")
        else:
            lines.append("- No candidate was refused: the constraints did not bind.")
    for v in vs:
        if v["kind"] == "trim":
            lines.append(trim_line(v, "refit_full_rows" in final))
            continue
        if "model_mb" not in v:
            lines.append(f"- Variant {v['kind']}: none ({v['why']}).")
            continue
        what = (f"{v['model_mb']:.3g} MB, p50 {v['latency_ms_p50']:.3g} ms (model.onnx: "
                f"{v['shipped_model_mb']:.3g} MB, {v['shipped_latency_ms_p50']:.3g} ms), "
                f"max diff {v['max_diff']:.2g} against model.onnx"
                + (f", holdout {v['holdout_score']:.5g}" if "holdout_score" in v else ""))
        lines.append(f"- Variant {v['kind']}: " + (f"kept as `{v['file']}` within the declared tolerance "
                                                   f"{v['tolerance']:g}: {what}." if v["kept"]
                                                   else f"refused ({v['why']}): {what}."))
    return "\n".join(lines) + "\n"


def trim_line(v: dict[str, Any], refit_full: bool = False) -> str:
    """The card's line for export.variants=[trim] (automl/export/trim.py). `refit_full`: the shipped model was
    refit on every row, so its trimmed graph's holdout score has seen the holdout."""
    if "rounds" not in v or "model_mb" not in v:
        return f"- Variant trim: none ({v.get('why', 'not made')})."
    what = (f"{v['rounds']} of {v['shipped_rounds']} rounds/trees, chosen on the holdout (Python: "
            f"{v['holdout_score_python']:.5g} against {v['full_score']:.5g} with every tree, declared score "
            f"tolerance {v['tolerance']:g}); {v['model_mb']:.3g} MB, p50 {v['latency_ms_p50']:.3g} ms (model.onnx: "
            f"{v['shipped_model_mb']:.3g} MB, {v['shipped_latency_ms_p50']:.3g} ms); parity against the trimmed "
            f"model passed (max diff {v['parity']['max_diff']:.2g}), outputs moved by up to {v['max_diff']:.2g} "
            "against model.onnx" + (f", holdout {v['holdout_score']:.5g} through onnxruntime"
                                    + (" (refit on every row, the holdout included: optimistic)" if refit_full else "")
                                    if "holdout_score" in v else ""))
    return (f"- Variant trim: kept as `{v['file']}`: {what}." if v["kept"]
            else f"- Variant trim: refused ({v['why']}): {what}.")
