"""Scan a table too large for memory: CSV, Parquet file or folder of Parquet files, read in record batches.

One pass gives (1) a streaming profile: exact row and missing counts, exact mean/std/min/max and class
counts, approximate quantiles (from a per-column uniform reservoir) and approximate distinct counts
(a KMV sketch, exact below its size); (2) two uniform row samples of fixed size drawn with seeded
random keys (bottom-k): the search sample from the non-holdout rows, the holdout sample from rows
hash-selected into the holdout with probability `holdout`, so the holdout is drawn from the whole
file and never overlaps the search rows. Classification targets also keep a per-class floor of rows,
so a rare class reaches the search sample (stratification without knowing the counts in advance).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from automl.data.arrow import to_pandas
from automl.data.source import Source, csv_column_types, iter_batches
from automl.errors import UserError
from automl.memory import release_freed

QUANTILE_RESERVOIR = 20_000  # values kept per numeric column; quantile error ~ 1/sqrt(n)
KMV_K = 4096  # distinct-count sketch size: exact below it, ~1.6% relative error above
TOP_KEYS = 10_000  # value counts kept per string column; beyond it top values become approximate
CLASS_FLOOR = 200  # rows kept per class (at most MAX_FLOOR_CLASSES classes) whatever the sample size
MAX_FLOOR_CLASSES = 100
QUANTILES = (0.01, 0.25, 0.5, 0.75, 0.99)
# a scanned batch's in-memory size: the scan's peak grows with it (the batch, its per-column float arrays and
# keys, the reservoirs' takes) above a floor of imports, read-ahead and allocator pages, and smaller batches
# past this size saved little while costing time (benchmarks/RESULTS.md, session 39)
BATCH_MB = 24.0
MIN_BATCH_ROWS = 8_192  # below this the per-batch work dominates the scan's time
MAX_BATCH_ROWS = 262_144


# ---------------------------------------------------------------------------------------------- statistics


@dataclass
class ColumnStats:
    name: str
    numeric: bool
    n_missing: int = 0
    n_inf: int = 0
    count: int = 0  # finite values
    mean: float = 0.0
    m2: float = 0.0
    min: float = np.inf
    max: float = -np.inf
    res_keys: np.ndarray = field(default_factory=lambda: np.empty(0))
    res_vals: np.ndarray = field(default_factory=lambda: np.empty(0))
    kmv: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.uint64))
    counts: dict[str, int] = field(default_factory=dict)
    counts_capped: bool = False

    def update(self, arr: Any, row_keys: np.ndarray) -> None:
        """Fold one batch column in; row_keys are the batch's random row keys (shared by all columns:
        each column's reservoir is still a uniform sample of its values)."""
        import pandas as pd

        if self.numeric:
            v = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)  # nulls arrive as NaN
            nan = np.isnan(v)
            self.n_missing += int(nan.sum())  # nulls, and NaN stored as a value (Parquet)
            finite = np.isfinite(v)
            fin = v[finite]
            keys = row_keys[finite]
            self.n_inf += int((~nan & ~finite).sum())
            if fin.size:
                n_b = fin.size
                mean_b = float(fin.mean())
                m2_b = float(((fin - mean_b) ** 2).sum())
                n = self.count + n_b
                delta = mean_b - self.mean
                self.mean += delta * n_b / n
                self.m2 += m2_b + delta * delta * self.count * n_b / n
                self.count = n
                self.min = min(self.min, float(fin.min()))
                self.max = max(self.max, float(fin.max()))
                if self.res_keys.size >= QUANTILE_RESERVOIR:  # only keys below the k-th can enter
                    below = keys < self.res_keys.max()
                    keys, fin = keys[below], fin[below]
                self.res_keys, self.res_vals = _bottom_k(
                    np.concatenate([self.res_keys, keys]),
                    np.concatenate([self.res_vals, fin]),
                    QUANTILE_RESERVOIR,
                )
            values = None
        else:
            import pyarrow.compute as pc

            vc = pc.value_counts(arr.drop_null())
            for item in vc.to_pylist():
                key = str(item["values"])
                if key in self.counts:
                    self.counts[key] += item["counts"]
                elif len(self.counts) < TOP_KEYS:
                    self.counts[key] = item["counts"]
                else:
                    self.counts_capped = True
            self.n_missing += arr.null_count
            values = vc.field("values").to_numpy(zero_copy_only=False)  # distinct values of the batch
        if values is None:
            import pyarrow.compute as pc

            values = pc.unique(pc.drop_null(arr)).to_numpy(zero_copy_only=False).astype(np.float64)
            values = values[~np.isnan(values)]
        if len(values):
            h = pd.util.hash_array(np.asarray(values, dtype=object) if not self.numeric else values)
            thr = self.kmv[-1] if self.kmv.size >= KMV_K else np.uint64(2**64 - 1)
            h = h[h <= thr]
            if h.size:
                self.kmv = np.unique(np.concatenate([self.kmv, h]))[:KMV_K]

    def distinct(self) -> tuple[int, bool]:
        """(distinct count, exact?)"""
        if self.kmv.size < KMV_K:
            return int(self.kmv.size), True
        return int((KMV_K - 1) / (float(self.kmv[-1]) / 2.0**64)), False

    def to_json(self, n_rows: int) -> dict[str, Any]:
        card, exact = self.distinct()
        out: dict[str, Any] = {
            "missing_pct": round(100 * self.n_missing / max(n_rows, 1), 2),
            "cardinality": card,
            "cardinality_exact": exact,
        }
        if self.numeric and self.count:
            out.update(
                mean=self.mean,
                std=float(np.sqrt(self.m2 / (self.count - 1))) if self.count > 1 else 0.0,
                min=self.min,
                max=self.max,
                quantiles={str(q): float(np.quantile(self.res_vals, q)) for q in QUANTILES},
                quantiles_from=int(self.res_vals.size),
            )
            if self.n_inf:
                out["infinite"] = self.n_inf
        if not self.numeric:
            top = heapq.nlargest(5, self.counts.items(), key=lambda kv: kv[1])
            out["top_values"] = {k: int(v) for k, v in top}
            out["top_values_exact"] = not self.counts_capped
        return out


def _bottom_k(keys: np.ndarray, vals: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if keys.size <= k:
        return keys, vals
    idx = np.argpartition(keys, k - 1)[:k]
    return keys[idx], vals[idx]


# -------------------------------------------------------------------------------------------- row samples


class RowReservoir:
    """The k rows with the smallest random keys seen so far (a uniform sample without replacement)."""
    def __init__(self, k: int) -> None:
        self.k = k
        self.keys = np.empty(0)
        self.parts: list[Any] = []  # pyarrow tables, key-filtered
        self.part_keys: list[np.ndarray] = []
        self.held = 0
        self.threshold = np.inf

    def offer(self, batch: Any, keys: np.ndarray, rows: np.ndarray) -> None:
        """Offer batch rows `rows` (indices) whose random keys are keys[rows]."""
        if self.k <= 0 or not rows.size:
            return
        sel = rows[keys[rows] < self.threshold]
        if not sel.size:
            return
        self.parts.append(batch.take(sel))
        self.part_keys.append(keys[sel])
        self.held += sel.size
        if self.held > 2 * self.k:
            self._trim()

    def _trim(self) -> None:
        import pyarrow as pa

        table = pa.concat_tables(
            [pa.Table.from_batches([b]) if isinstance(b, pa.RecordBatch) else b for b in self.parts]
        )
        keys = np.concatenate(self.part_keys)
        order = np.argsort(keys, kind="stable")[: self.k]
        self.parts, self.part_keys = [table.take(order)], [keys[order]]
        self.held = len(order)
        if self.held >= self.k:
            self.threshold = float(keys[order[-1]])

    def table(self) -> Any:
        """The sample, in key order (so any prefix is itself a uniform sample)."""
        import pyarrow as pa

        if not self.parts:
            return None
        self._trim()
        return self.parts[0] if isinstance(self.parts[0], pa.Table) else pa.Table.from_batches(self.parts[:1])


@dataclass
class ScanResult:
    n_rows: int  # rows with a target
    n_rows_read: int
    missing_target: int
    columns: dict[str, dict[str, Any]]
    target_counts: dict[str, int] | None  # exact class counts, None when the target is not class-like
    search: Any  # pandas frame, key order
    holdout: Any  # pandas frame
    int_columns: list[str]
    seconds: float
    n_uniform: int = 0  # the search sample's uniform rows, before the class floor rows appended to them


def batch_rows_for(bytes_per_row: float) -> int:
    """Rows per scanned batch: BATCH_MB of in-memory (pandas) bytes, so a wide table's batches are not
    wider in memory than a narrow one's."""
    if bytes_per_row <= 0:
        return MAX_BATCH_ROWS
    return int(min(max(BATCH_MB * 2**20 / bytes_per_row, MIN_BATCH_ROWS), MAX_BATCH_ROWS))


def scan(
    src: Source, target: str, search_rows: int, holdout_rows: int, holdout_share: float, seed: int,
    bytes_per_row: float = 0.0,
) -> ScanResult:
    """One pass over the source: streaming statistics and the two samples. `bytes_per_row` (the estimate's
    pandas bytes per row) sizes the batches."""
    import time

    import pyarrow as pa
    import pyarrow.compute as pc

    t0 = time.time()
    types, int_cols = csv_column_types(src) if src.kind == "csv" else (None, [])  # ints are read as float64
    rng_rows = np.random.default_rng([seed, 9001])
    rng_stats = np.random.default_rng([seed, 9002])
    stats: dict[str, ColumnStats] = {}
    search = RowReservoir(search_rows)
    hold = RowReservoir(holdout_rows)
    floors: dict[Any, RowReservoir] | None = {}
    class_counts: dict[str, int] | None = {}
    n_read = n_missing_target = 0
    for batch in iter_batches(src, column_types=types, batch_rows=batch_rows_for(bytes_per_row)):
        if target not in batch.schema.names:
            cols = batch.schema.names
            raise UserError(
                "task.target",
                f"'{target}' is not a column of {src.name}",
                f"Set task.target to one of: {', '.join(cols[:20])}{' ...' if len(cols) > 20 else ''}.",
            )
        n_read += batch.num_rows
        tgt = batch.column(target)
        if tgt.null_count:
            keep = pc.is_valid(tgt)
            n_missing_target += tgt.null_count
            batch = batch.filter(keep)
            tgt = batch.column(target)
        if batch.num_rows == 0:
            continue
        stat_keys = rng_stats.random(batch.num_rows)
        for i, f in enumerate(batch.schema):
            if f.name not in stats:
                numeric = (
                    pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_boolean(f.type)
                )
                stats[f.name] = ColumnStats(f.name, numeric)
            col = batch.column(i)
            if stats[f.name].numeric and pa.types.is_boolean(col.type):
                col = col.cast(pa.int8())
            stats[f.name].update(col, stat_keys)
        if class_counts is not None:
            for item in pc.value_counts(tgt).to_pylist():
                key = str(item["values"])
                class_counts[key] = class_counts.get(key, 0) + item["counts"]
            if len(class_counts) > MAX_FLOOR_CLASSES:
                class_counts, floors = None, None
        keys = rng_rows.random(batch.num_rows)
        in_hold = rng_rows.random(batch.num_rows) < holdout_share
        hold.offer(batch, keys, np.flatnonzero(in_hold))
        search.offer(batch, keys, np.flatnonzero(~in_hold))
        if floors is not None:
            import pandas as pd

            codes, uniques = pd.factorize(np.asarray(tgt.to_numpy(zero_copy_only=False)))
            for j, lab in enumerate(uniques):
                floors.setdefault(str(lab), RowReservoir(CLASS_FLOOR)).offer(
                    batch, keys, np.flatnonzero((codes == j) & ~in_hold)
                )
    if src.kind == "sql":
        int_cols = src.sql_source().int_columns  # known once the first chunk fixed the types
    if n_read == 0:
        raise UserError("data.path", f"'{src.name}' has no data rows", "Point to a file with data rows.")
    n = n_read - n_missing_target
    if n == 0:
        raise UserError(
            f"column '{target}'", "the target is missing in every row", "Choose a target with values."
        )
    search_tab = search.table()
    n_uniform = search_tab.num_rows if search_tab is not None else 0
    if floors:  # add each class's floor rows the uniform sample missed (rare classes)
        search_tab = _union_floor(search_tab, [r.table() for r in floors.values()], target)
    hold_tab = hold.table()
    search_df = to_pandas(search_tab, int_cols)
    hold_df = to_pandas(hold_tab, int_cols) if hold_tab is not None else search_df.iloc[:0]
    del search, hold, floors, search_tab, hold_tab
    # the scan's freed buffers back to the OS (arrow's pool and glibc's arenas keep them): the driver
    # measures itself after this, and every forked trial would map what it kept
    release_freed()
    columns = {name: st.to_json(n) for name, st in stats.items()}
    if class_counts is not None and target in int_cols:  # integer labels read as float: "1.0" -> "1"
        class_counts = {str(int(float(k))): v for k, v in class_counts.items()}
    return ScanResult(
        n, n_read, n_missing_target, columns, class_counts, search_df, hold_df, int_cols, time.time() - t0,
        n_uniform,
    )


def _union_floor(search_tab: Any, floor_tabs: list[Any], target: str) -> Any:
    """The uniform sample plus, per class, the floor rows it lacks."""
    import pandas as pd
    import pyarrow as pa

    if search_tab is None:
        return pa.concat_tables([t for t in floor_tabs if t is not None])
    counts = pd.Series(search_tab.column(target).to_numpy(zero_copy_only=False)).astype(str).value_counts()
    add = []
    for t in floor_tabs:
        if t is None or t.num_rows == 0:
            continue
        # both are bottom-k by the same keys: the class's rows in the uniform sample are the first rows
        # of its floor reservoir, so the rows to add are the ones after them
        have = int(counts.get(str(t.column(target)[0].as_py()), 0))
        need = min(CLASS_FLOOR, t.num_rows) - have
        if need > 0:
            add.append(t.slice(have, need))
    return pa.concat_tables([search_tab, *add]) if add else search_tab
