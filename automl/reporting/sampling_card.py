"""The model card's section on a run whose data was larger than the memory budget (automl/data/large.py
sampled it): sizes, how the rows were chosen, and the learning curve, from the manifest's `sampling`."""
from __future__ import annotations

from typing import Any

from automl.manifest import Manifest


def card_lines(m: Manifest) -> list[str]:
    """The model card's section on a sampled run: sizes, how rows were chosen, the learning curve."""
    s = m.sampling
    if not s:
        return []
    b = m.budget
    out = [
        "",
        "## Data larger than the memory budget",
        f"- Sampled because {s['reason']}.",
        f"- The data has **{s['rows_total']}** rows (~{s['estimated_memory_mb']:.0f} MB in memory); the memory budget "
        f"is {b['memory_mb']:.0f} MB ({b['memory_mb_source']}), which leaves {s['data_allowance_mb']:.0f} MB for "
        "data. The engine did not load the file: it scanned it once "
        f"({s['rows_scanned']} rows in {s['scan_s']:.1f} s) and streamed the profile (exact counts, missing shares, "
        "mean/std/min/max and class counts; approximate quantiles and distinct counts).",
        f"- Memory-bound sample: **{s.get('memory_sample_rows', s['search_sample_rows'])}** rows besides the "
        f"holdout, the most the memory budget allows ({s['search_selection']}).",
        f"- Search sample: **{s['search_sample_rows']}** rows"
        + (f" ({s['search_sample_reason']}; a prefix of the memory-bound sample in its random order, with the "
           "per-class floor rows)." if s.get("search_sample_reason") else "."),
        f"- Holdout: **{s['holdout_rows']}** rows drawn from the whole file ({s['holdout_selection']}); "
        "never seen by the search.",
        f"- Final model fitted on **{s['final_model_rows']}** rows"
        + (f": {s.get('final_sample_rows')} sample rows ({s['final_sample_reason']})"
           if s.get("final_sample_reason") else "")
        + (" plus the holdout rows" if s["final_model_rows"] > s.get("final_sample_rows", s["final_model_rows"])
           else "") + ".",
        f"- Per-trial memory limit {b['trial_memory_mb']:.0f} MB (what the budget leaves after the driver).",
    ]
    out += _row_cost_lines(s)
    if s.get("fit_time_model"):
        out.append(f"- Fit time priced from the learning curve: {s['fit_time_model']}.")
    if s.get("trial_time_limit_s"):
        out.append(f"- Trial time limit {s['trial_time_limit_s']:.0f} s (4x the planned trial time): a family far "
                   "slower than planned (k-NN scoring grows with the square of the rows) is stopped, not waited for.")
    lc = s.get("learning_curve") or {}
    if lc.get("points"):
        out += [
            "",
            f"### Learning curve ({lc['model']}, holdout {lc['metric']})",
            "",
            "| rows | holdout score | fit s | trial MB (own pages) |",
            "|---|---|---|---|",
        ]
        out += [f"| {int(p['rows'])} | {p['score']:.5g} | {p['fit_s']:.2f} | "
                f"{p['mem_mb']:.0f} |" if p.get("mem_mb") else
                f"| {int(p['rows'])} | {p['score']:.5g} | {p['fit_s']:.2f} | - |" for p in lc["points"]]
        out += ["", f"- Verdict: {lc['verdict']}."]
        if lc.get("stopped"):
            out.append(f"- Curve cut short: {lc['stopped']}.")
    elif lc:
        out.append(f"- Learning curve: {lc.get('verdict', 'not measured')}; {lc.get('stopped', '')}")
    return out


def _row_cost_lines(s: dict[str, Any]) -> list[str]:
    """How many rows the budget held and why, and what more memory would have bought."""
    rc = s.get("row_cost")
    if not rc:
        return []
    out = [f"- Rows used and why: a row costs {rc['bytes_per_row']:.0f} bytes as held (measured on the file's first "
           f"block), kept {rc['driver_copies']:.0f}x by the driver and {rc['trial_copies']:.0f}x by each of "
           f"{rc['workers']} worker(s)' trials: {rc['budget_bytes_per_row']:.0f} bytes of budget per row. After the "
           f"driver's {rc['driver_mb']:.0f} MB, {rc['trial_overhead_mb']:.0f} MB per trial before it touches data and "
           f"a {rc['reserve_mb']:.0f} MB reserve, the budget holds **{rc['rows_the_budget_holds']}** rows."]
    lc = s.get("learning_curve") or {}
    more = (f"- What more memory would buy: each +100 MB of budget.memory_mb holds ~{rc['rows_per_100_mb_more']} "
            "more rows")
    if lc.get("gain_last_doubling") is not None:
        pts = lc["points"]
        more += (f"; the learning curve's slope at its top ({int(pts[-2]['rows'])} -> {int(pts[-1]['rows'])} rows) "
                 f"is {lc['gain_last_doubling']:+.4g} per doubling of rows"
                 + (" (relative)" if lc.get("metric") in ("rmse", "mae") else "")
                 + (", so more rows would likely pay" if lc.get("more_data_would_pay") else
                    ", so more rows are unlikely to pay"))
    return [*out, more + "."]
