"""The engine's memory budget (budget.memory_mb): its default, and what it leaves for data and trials.

The budget bounds the driver and the trials together. The driver's own footprint is measured (RSS
after the heavy imports), not guessed; trials get what the driver leaves, split over the workers;
the data the search sees is sized so both fit. The factors below are what a pandas frame costs
once the engine has copied it (model frame, search/holdout slices) and what a trial touches while
it fits (fold slices, preprocessed arrays, the model): rough on purpose, and erring high.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from automl.errors import UserError

log = logging.getLogger("automl")

DEFAULT_FRACTION = 0.6  # of available memory when budget.memory_mb = 0: leaves room for the OS and neighbours
DRIVER_COPIES = 4.0  # sample frame + model frame + search/holdout slices, while the driver holds them
TRIAL_COPIES = 5.0  # per trial: fold slices, preprocessed float arrays, model structures
# a forked trial's private pages before it touches the data: pages Python's reference counting writes
# (copy-on-write), the family's own library when the driver has not loaded it (CatBoost ~20 MB), and the
# ONNX export check. Measured (learning-curve HGB fits, doctor_contacts, 14 columns, USS polled every
# 0.25 s): 22 MB at 574 rows, 32 MB at 5.8k, 76 MB at 92k rows, i.e. ~0.5 kB a row where TRIAL_COPIES
# prices ~1 kB; the 80 MB leaves room for a library the driver does not hold
TRIAL_OVERHEAD_MB = 80.0
# below this a trial cannot fit any model: a budget that leaves less after the driver is refused
# (budget.memory_mb is a limit no process may pass, not a hint)
MIN_TRIAL_MB = 64.0
MIN_SAMPLE_ROWS = 2000
# kept back from the trials for what the driver allocates after their limit is set (the final stage
# receives the ONNX bytes and holdout predictions, renders reports)
DRIVER_RESERVE = 0.1


@dataclass
class MemoryBudget:
    total_mb: float
    source: str  # "budget.memory_mb" or "default: 60% of available memory"

    def to_json(self) -> dict[str, object]:
        return {"memory_mb": round(self.total_mb, 1), "memory_mb_source": self.source}


def resolve_budget(memory_mb: float) -> MemoryBudget:
    if memory_mb and memory_mb > 0:
        return MemoryBudget(float(memory_mb), "budget.memory_mb")
    import psutil

    avail = psutil.virtual_memory().available / 2**20
    return MemoryBudget(
        DEFAULT_FRACTION * avail, f"default: {DEFAULT_FRACTION:.0%} of {avail:.0f} MB available"
    )


def process_mb() -> float:
    """The driver's resident memory now (MB)."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def data_allowance_mb(budget: MemoryBudget, driver_mb: float, n_workers: int) -> float:
    """The in-memory (pandas) size of the data the search may hold so that the driver, holding it, and its
    trials, each holding their copies, fit the budget together (the driver's reserve kept back)."""
    usable = (1.0 - DRIVER_RESERVE) * budget.total_mb - driver_mb - n_workers * TRIAL_OVERHEAD_MB
    return max(usable, 0.0) / (DRIVER_COPIES + TRIAL_COPIES * n_workers)


def rows_for(budget: MemoryBudget, driver_mb: float, n_workers: int, bytes_per_row: float) -> int:
    """The rows (search + holdout) the budget holds at `bytes_per_row` (the frame's measured bytes per row):
    per row, DRIVER_COPIES in the driver and TRIAL_COPIES in each worker's trial."""
    return int(data_allowance_mb(budget, driver_mb, n_workers) * 2**20 / max(bytes_per_row, 1.0))


def row_cost(budget: MemoryBudget, driver_mb: float, n_workers: int, bytes_per_row: float) -> dict[str, Any]:
    """What a row costs the budget, and what the budget holds: the model card's account of the sample."""
    per_row = bytes_per_row * (DRIVER_COPIES + TRIAL_COPIES * n_workers)
    return {"bytes_per_row": round(bytes_per_row, 1), "driver_copies": DRIVER_COPIES, "trial_copies": TRIAL_COPIES,
            "workers": n_workers, "budget_bytes_per_row": round(per_row, 1),
            "driver_mb": round(driver_mb, 1), "trial_overhead_mb": TRIAL_OVERHEAD_MB,
            "reserve_mb": round(DRIVER_RESERVE * budget.total_mb, 1),
            "rows_the_budget_holds": rows_for(budget, driver_mb, n_workers, bytes_per_row),
            "rows_per_100_mb_more": int(100 * 2**20 / max(per_row, 1.0))}


def trial_limit_mb(budget: MemoryBudget, driver_mb: float, n_workers: int) -> tuple[float, bool]:
    """Per-trial limit on the pages a trial owns (USS) from what the driver leaves; a forked trial also
    maps the driver's pages, so its RSS stays within the budget too. (limit, floored): floored means the
    budget was too small and MIN_TRIAL_MB was used instead."""
    share = (1.0 - DRIVER_RESERVE) * (budget.total_mb - driver_mb) / max(n_workers, 1)
    return (max(share, MIN_TRIAL_MB), share < MIN_TRIAL_MB)


def trial_memory_mb(fixed_mb: float, budget: MemoryBudget, n_workers: int = 1) -> float:
    """Each trial's memory limit: budget.trial_memory_mb if set, else what the memory budget leaves after
    the driver, split over the workers' side-by-side trials."""
    if fixed_mb:
        return float(fixed_mb)
    driver = process_mb()
    limit, floored = trial_limit_mb(budget, driver, n_workers)
    if floored:
        # trial_limit_mb solved for the budget, rounded up, +1 MB for the driver measured again a moment later
        least = math.ceil(driver + n_workers * MIN_TRIAL_MB / (1.0 - DRIVER_RESERVE)) + 1
        raise UserError("budget.memory_mb", f"{budget.total_mb:.0f} MB leaves less than {MIN_TRIAL_MB:.0f} MB per "
                        f"trial after the driver's {driver:.0f} MB ({n_workers} worker(s))",
                        f"Raise budget.memory_mb to at least {least}"
                        + (", or use fewer search.n_workers." if n_workers > 1 else "."))
    return limit


# MB a member the refit process has already fitted holds while the next one fits, per MB of its ONNX graph: the
# fitted Python model and its share of the ensemble's graph and onnxruntime session (the graph's size tracks
# the model's: a forest's nodes, a k-NN's stored rows)
HELD_PER_GRAPH_MB = 2.0


def held_mb(attrs: dict[str, Any]) -> float:
    """What a fitted member is expected to hold beside the next member's fit: HELD_PER_GRAPH_MB x its measured
    graph (0.0 when the search did not export it)."""
    return HELD_PER_GRAPH_MB * float(attrs.get("onnx_bytes", 0)) / 1e6


def members_memory(attrs: Sequence[dict[str, Any]], stack_mb: float = 0.0) -> dict[str, Any]:
    """refit_need_mb's `peaks`, `held` and `stack` for a plan's members, from their trials' user attrs. What a
    trial measured loading the export stack (onnx, skl2onnx) itself (its `stack_mb`: ~0 where the driver holds
    it) does not grow with the rows: it is taken out of that trial's peak and priced once, as `stack_mb` (the
    most a trial measured)."""
    peaks = [p if p is None else max(float(p) - float(a.get("stack_mb") or 0.0), 0.0)
             for a in attrs for p in [a.get("peak_mb")]]
    return {"peaks": peaks, "held": [held_mb(a) for a in attrs], "stack": stack_mb}


def refit_need_mb(peaks: list[float | None], trial_rows: int, refit_rows: int,
                  held: Sequence[float] = (), stack: float = 0.0) -> float | None:
    """The pages (USS, MB) a final refit of trials with these measured peaks is expected to own on `refit_rows`:
    the largest member's peak, plus what the other members hold (`held`, aligned with `peaks`: held_mb) while it
    fits, since an ensemble's members are fitted one after the other in one process; scaled by the rows over the
    rows the trials' folds were fitted on (the fit, the export and the parity check all grow with them), plus
    the export stack the refit loads (`stack`, fixed). The fork's own pages scale too, so a single errs high;
    members not measured are left out. None: no peak measured (no memory limit was in force while the trials
    ran)."""
    parts = peak_and_held(peaks, held)
    return None if parts is None else sum(parts) * max(refit_rows / max(trial_rows, 1), 1.0) + stack


def peak_and_held(peaks: list[float | None], held: Sequence[float] = ()) -> tuple[float, float] | None:
    """(the largest measured peak, what the other members hold beside it); None when no peak was measured."""
    measured = [(float(p), i) for i, p in enumerate(peaks) if p is not None and p > 0]
    if not measured:
        return None
    top, at = max(measured)
    return top, sum(h for i, h in enumerate(held) if i != at)


def rows_within(peaks: list[float | None], trial_rows: int, limit_mb: float, rows: int,
                held: Sequence[float] = (), stack: float = 0.0) -> int:
    """The most of `rows` a refit fits on within `limit_mb` by refit_need_mb (all of them when no limit is in force
    or no peak was measured); never fewer than the rows the trials' folds were fitted on, which they did within it."""
    parts = peak_and_held(peaks, held) if limit_mb > 0 else None
    if parts is None or sum(parts) <= 0:
        return rows
    return min(rows, max(trial_rows, int(trial_rows * (limit_mb - stack) / sum(parts))))


# a refit stopped over its memory limit is retried once on this share of its rows, before the next plan: the
# kill is evidence its trials' peaks missed, and a refit priced just under its limit can pass it (the case is in
# benchmarks/RESULTS.md, session 39)
MEMOUT_RETRY_SHARE = 0.75


def rows_after_memout(rows: int) -> int:
    """The rows a refit stopped over its memory limit on `rows` rows is retried on."""
    return int(rows * MEMOUT_RETRY_SHARE)


def over_limit(label: str, peaks: list[float | None], trial_rows: int, refit_rows: int, limit_mb: float,
               held: Sequence[float] = (), stack: float = 0.0) -> str:
    """Why a final refit is not tried ("" to try it): its trials' measured peaks say it would pass the limit."""
    need = refit_need_mb(peaks, trial_rows, refit_rows, held, stack) if limit_mb > 0 else None
    if need is None or need <= limit_mb:
        return ""
    top, others = peak_and_held(peaks, held) or (0.0, 0.0)
    beside = f" and {others:.0f} MB of fitted members held beside" if others > 0 else ""
    loads = f", plus the {stack:.0f} MB export stack it loads" if stack >= 0.5 else ""
    return (f"{label} on {refit_rows} rows: not tried, its trials peaked at {top:.0f} MB on "
            f"{trial_rows} rows{beside}{loads}, ~{need:.0f} MB expected, over the {limit_mb:.0f} MB trial limit")


def release_freed() -> None:
    """Hand memory freed by the last chunk back to the OS: pyarrow's pool keeps freed pages for reuse and
    glibc keeps freed blocks in its per-thread arenas, so a loop over chunks that allocates a little
    differently each time (strings, uneven batch sizes, onnxruntime and arrow threads) grows RSS slowly
    without holding any more live data. Cheap (a few ms): called once per chunk by streaming loops."""
    import sys

    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def _libc() -> Any:
    import ctypes
    import ctypes.util

    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return lib if hasattr(lib, "malloc_trim") else None  # glibc only (not musl, not macOS)

