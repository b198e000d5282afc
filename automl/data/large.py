"""Data larger than the memory budget: decide, scan, sample, and say so.

`load_for_run` estimates the in-memory size of the source. If it fits what budget.memory_mb leaves
for data (automl/memory.py), the whole table is read as before. Otherwise the source is scanned once
(automl/data/scan.py): the profile is streamed, the search gets a uniform (per-class floored) sample
sized to the budget, and the holdout is a sample of the whole file's holdout rows. The returned
frame is search sample + holdout sample, with the split fixed by the scan.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from automl.memory import MIN_SAMPLE_ROWS, MemoryBudget, data_allowance_mb, process_mb

log = logging.getLogger("automl")
# pandas bytes per byte on disk, erring high: text columns become Python strings; Parquet is compressed
_EXPANSION = {"csv": 10.0, "parquet": 40.0}


@dataclass
class Sampled:
    scan: Any  # ScanResult
    n_search: int
    n_holdout: int
    info: dict[str, Any] = field(default_factory=dict)  # manifest["sampling"]

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        return np.arange(self.n_search), np.arange(self.n_search, self.n_search + self.n_holdout)

    def merge_profile(self, profile: dict[str, Any], target: str, task: str) -> dict[str, Any]:
        """The sample's profile, with every field the scan knows exactly (or approximately, over all
        rows) replaced by the scan's figure; the profile says which fields came from where."""
        sc = self.scan
        profile["n_rows"] = sc.n_rows
        for col in profile["columns"]:
            st = sc.columns.get(col["name"])
            if st is None:
                continue
            for k in ("missing_pct", "cardinality", "mean", "std", "min", "max", "quantiles", "infinite"):
                if k in st:
                    col[k] = st[k]
            if "top_values" in col and "top_values" in st:
                col["top_values"] = st["top_values"]
            col["cardinality_exact"] = st["cardinality_exact"]
        t = profile["target"]
        t["missing"] = sc.missing_target
        tst = sc.columns.get(target, {})
        if task == "regression":
            for k in ("mean", "std", "min", "max", "quantiles"):
                if k in tst:
                    t[k] = tst[k]
        elif sc.target_counts:
            counts = {_label(k, target in sc.int_columns): v for k, v in sc.target_counts.items()}
            counts = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
            t["classes"] = counts
            hi, lo = max(counts.values()), min(counts.values())
            t["imbalance_ratio"] = round(hi / lo, 2)
            t["minority_class"] = min(counts, key=counts.get)
            t["minority_share"] = round(lo / sum(counts.values()), 4)
        profile["duplicate_rows_from_sample"] = True
        profile["streamed"] = {
            "rows_scanned": sc.n_rows_read,
            "sample_rows": self.n_search + self.n_holdout,
            "exact": [
                "n_rows",
                "missing_pct",
                "mean",
                "std",
                "min",
                "max",
                "target class counts",
                "cardinality (below 4096 distinct)",
                "top_values (below 10000 distinct)",
            ],
            "approximate": [
                "quantiles (uniform reservoir of 20000 values per column)",
                "cardinality (KMV sketch, above 4096 distinct)",
            ],
            "from_sample": ["roles", "outlier_share", "skew", "single_column_score", "duplicate_rows"],
            "seconds": round(sc.seconds, 2),
        }
        profile["warnings"].insert(
            0,
            f"the data ({sc.n_rows} rows) was sampled ({self.info.get('reason', '')}): the "
            f"profile was streamed in one pass and the search used a sample of {self.n_search} rows",
        )
        return profile


def _label(key: str, was_int: bool) -> str:
    if was_int:
        try:
            return str(int(float(key)))
        except ValueError:
            return key
    return key


def _read_whole(path: str, src: Any) -> pd.DataFrame:
    if src.kind == "sql":
        from automl.data.sql import read_frame

        return read_frame(src.sql)
    from automl.data.load import read_table

    return read_table(path)


def load_for_run(
    path: str, target: str, budget: MemoryBudget, n_workers: int, holdout: float, seed: int, max_rows: int = 0,
    src: Any = None,
) -> tuple[pd.DataFrame, Sampled | None]:
    """The frame the run works on, and how it was sampled (None: the whole table fits and was read).
    max_rows > 0 caps the rows held (search + holdout) and always samples when the data has more.
    `src` is the opened source (automl/data/scan.py open_source; a database needs it), else `path` is opened."""
    from automl.data.scan import estimate, open_source, scan

    src = src or open_source(path)
    driver = process_mb()
    allowance = data_allowance_mb(budget, driver, n_workers)
    # a file small on disk is small in memory: no estimate needed (and the reader's own error messages);
    # a database has no size on disk, so its rows are counted first
    if not max_rows and src.kind != "sql" and src.bytes * _EXPANSION[src.kind] / 2**20 <= allowance:
        return _read_whole(path, src), None
    rows, per_row = estimate(src)
    full_mb = rows * per_row / 2**20
    fits = full_mb <= allowance and (not max_rows or rows <= max_rows)
    log.info(
        "data: %s, %.0f MB on disk, ~%d rows, ~%.0f MB in memory; memory budget %.0f MB (%s), driver %.0f MB "
        "-> %.0f MB for data: %s",
        src.name,
        src.bytes / 2**20,
        rows,
        full_mb,
        budget.total_mb,
        budget.source,
        driver,
        allowance,
        "reading it whole" if fits else "scanning and sampling",
    )
    if fits:
        return _read_whole(path, src), None
    total = int(allowance * 2**20 / per_row)
    if max_rows:
        total = min(total, max_rows)
    floored = total < MIN_SAMPLE_ROWS
    total = max(total, MIN_SAMPLE_ROWS)
    n_hold = int(round(total * holdout))
    result = scan(src, target, total - n_hold, n_hold, holdout, seed)
    df = pd.concat([result.search, result.holdout], ignore_index=True)
    s = Sampled(result, len(result.search), len(result.holdout))
    s.info = {
        "sampled": True,
        "reason": (
            f"~{full_mb:.0f} MB in memory exceeds the {allowance:.0f} MB the memory budget leaves for data"
            if full_mb > allowance
            else f"data.max_rows={max_rows}"
        ),
        "source": {"files": len(src.files), "bytes": src.bytes, "format": src.kind}
        if src.kind != "sql" else {"format": "sql", "url": src.sql.masked, "read": src.sql.what},
        "rows_total": result.n_rows,
        "rows_scanned": result.n_rows_read,
        "estimated_rows": rows,
        "estimated_memory_mb": round(full_mb, 1),
        "bytes_per_row": round(per_row, 1),
        "data_allowance_mb": round(allowance, 1),
        "driver_mb_before_load": round(driver, 1),
        "search_sample_rows": s.n_search,  # the search's own rows: may be cut to its time (run.py)
        "memory_sample_rows": s.n_search,
        "holdout_rows": s.n_holdout,
        "holdout_selection": f"each row of the whole file joins the holdout with probability {holdout}; "
        f"{s.n_holdout} of them kept uniformly at random",
        "search_selection": "uniform sample of the other rows (seeded random keys, bottom-k), plus up to 200 rows "
        "per class so rare classes are present",
        "final_model_rows": s.n_search + s.n_holdout,
        "sample_floor_used": floored,
        "scan_s": round(result.seconds, 2),
    }
    log.info(
        "scanned %d rows in %.1fs: search sample %d rows, holdout %d rows (from the whole file)",
        result.n_rows_read,
        result.seconds,
        s.n_search,
        s.n_holdout,
    )
    return df, s


def card_lines(m: dict[str, Any]) -> list[str]:
    """The model card's section on a sampled run: sizes, how rows were chosen, the learning curve."""
    s = m.get("sampling")
    if not s:
        return []
    b = m["budget"]
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
            "| rows | holdout score | fit s |",
            "|---|---|---|",
        ]
        out += [f"| {int(p['rows'])} | {p['score']:.5g} | {p['fit_s']:.2f} |" for p in lc["points"]]
        out += ["", f"- Verdict: {lc['verdict']}."]
        if lc.get("stopped"):
            out.append(f"- Curve cut short: {lc['stopped']}.")
    elif lc:
        out.append(f"- Learning curve: {lc.get('verdict', 'not measured')}; {lc.get('stopped', '')}")
    return out
