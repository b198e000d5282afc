"""Data larger than the memory budget: decide, scan, sample, and say so.

`load_for_run` estimates the in-memory size of the source. If it fits what budget.memory_mb leaves
for data (automl/memory.py), the whole table is read as before. Otherwise the source is scanned once
(automl/data/scan.py): the profile is streamed, the search gets a uniform (per-class floored) sample
sized to the budget, and the holdout is a sample of the whole file's holdout rows. The returned
frame is search sample + holdout sample, with the split fixed by the scan.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from automl.data.load import read_table
from automl.data.scan import ScanResult, scan
from automl.data.source import Source, estimate, open_source
from automl.data.sql import read_frame
from automl.errors import UserError
from automl.memory import (
    MIN_SAMPLE_ROWS,
    MemoryBudget,
    data_allowance_mb,
    process_mb,
    release_freed,
    row_cost,
    rows_for,
)

log = logging.getLogger("automl")
# pandas bytes per byte on disk, erring high: text columns become Python strings; Parquet is compressed
_EXPANSION = {"csv": 10.0, "parquet": 40.0}


@dataclass
class Sampled:
    scan: ScanResult
    n_search: int
    n_holdout: int
    info: dict[str, Any] = field(default_factory=dict)  # manifest["sampling"]

    def split(self, task: str = "") -> tuple[np.ndarray, np.ndarray]:
        """(search rows, holdout rows) of the frame. A regression target with few distinct values (counts)
        also got per-value floor rows from the scan; they over-represent its rare values, so a
        regression searches and refits on the uniform rows only."""
        n = self.n_search
        if task == "regression" and 0 < self.scan.n_uniform < n:
            n = self.scan.n_uniform
            self.info["memory_sample_rows"] = self.info["search_sample_rows"] = n
            self.info["search_selection"] = "uniform sample of the other rows (seeded random keys, bottom-k)"
        return np.arange(n), np.arange(self.n_search, self.n_search + self.n_holdout)

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
            t["minority_class"] = min(counts, key=counts.__getitem__)
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


def _scan_child(conn: Any, args: tuple[Any, ...]) -> None:
    arrow_pool_for_scan()
    try:
        conn.send(("ok", scan(*args)))
    except UserError as e:
        conn.send(("user", e.where, e.rule, e.fix))
    except BaseException as e:  # reported by the driver, which has the traceback-free one-line path
        conn.send(("error", f"{type(e).__name__}: {e}"[:2000]))
    finally:
        conn.close()


def arrow_pool_for_scan() -> None:
    """jemalloc for the scan's Arrow buffers where pyarrow has it: the scan allocates batches of slightly
    different sizes over and over, and the default mimalloc pool kept more of them resident (measured:
    benchmarks/RESULTS.md, session 39). The scan process lives only for the scan, so the choice stays in it."""
    import pyarrow as pa

    with suppress(NotImplementedError):  # a pyarrow built without jemalloc keeps its default pool
        pa.set_memory_pool(pa.jemalloc_memory_pool())


def scan_apart(src: Source, *args: Any) -> ScanResult:
    """scan(src, *args) in a fresh (spawned) process that loads only pyarrow, numpy and pandas. The
    scan's transient memory (the CSV reader's read-ahead, per-batch statistics, what the allocators keep
    afterwards: +150-220 MB over a 1.1 GB file) is then neither added to the driver's imports
    (scikit-learn, ONNX: ~240 MB) nor kept by the driver, whose pages every forked trial maps. A
    database source is scanned in the driver (its connection does not cross processes)."""
    import multiprocessing as mp

    if src.kind == "sql":
        return scan(src, *args)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_scan_child, args=(child, (src, *args)), daemon=True)
    proc.start()
    child.close()
    try:
        msg = parent.recv()
    except EOFError:
        proc.join(5.0)
        msg = ("error", f"the scan process died (exit code {proc.exitcode})")
    finally:
        parent.close()
    proc.join(5.0)
    if msg[0] == "user":
        raise UserError(*msg[1:])
    if msg[0] == "error":
        raise RuntimeError(f"scanning {src.name} failed: {msg[1]}")
    return msg[1]


def _read_whole(path: str, src: Source) -> pd.DataFrame:
    if src.kind == "sql":
        return read_frame(src.sql_source())
    return read_table(path)


def load_for_run(
    path: str, target: str, budget: MemoryBudget, n_workers: int, holdout: float, seed: int, max_rows: int = 0,
    src: Source | None = None,
) -> tuple[pd.DataFrame, Sampled | None]:
    """The frame the run works on, and how it was sampled (None: the whole table fits and was read).
    max_rows > 0 caps the rows held (search + holdout) and always samples when the data has more.
    `src` is the opened source (automl/data/source.py open_source; a database needs it), else `path` is opened."""
    src = src or open_source(path)
    driver = process_mb()
    allowance = data_allowance_mb(budget, driver, n_workers)
    # a file small on disk is small in memory: no estimate needed (and the reader's own error messages);
    # a database has no size on disk, so its rows are counted first
    if not max_rows and src.kind != "sql" and src.bytes * _EXPANSION[src.kind] / 2**20 <= allowance:
        return _read_whole(path, src), None
    rows, per_row = estimate(src)
    release_freed()  # the estimate's parsed first block: the driver holds its pages while the scan runs beside it
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
    total = rows_for(budget, driver, n_workers, per_row)
    if max_rows:
        total = min(total, max_rows)
    floored = total < MIN_SAMPLE_ROWS
    total = max(total, MIN_SAMPLE_ROWS)
    n_hold = round(total * holdout)
    result = scan_apart(src, target, total - n_hold, n_hold, holdout, seed, per_row)
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
        if src.kind != "sql" else {"format": "sql", "url": src.sql_source().masked, "read": src.sql_source().what},
        "rows_total": result.n_rows,
        "rows_scanned": result.n_rows_read,
        "estimated_rows": rows,
        "estimated_memory_mb": round(full_mb, 1),
        "bytes_per_row": round(per_row, 1),
        "data_allowance_mb": round(allowance, 1),
        "row_cost": row_cost(budget, driver, n_workers, per_row),
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
