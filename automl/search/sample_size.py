"""How many rows the search and the final model get on sampled data: memory sets the ceiling, time the size.

The memory budget bounds the sample the run holds (automl/data/large.py). On a large file that sample
can be too big to search: on 227k rows each trial took 13-20 s and a 180 s run completed one or two.
The learning curve (automl/search/learning_curve.py) has just measured what a quick model's fit costs
at growing sizes; a line through those fit times (seconds = a + b x rows) prices a fit at any size.
From it:

- the **final model** gets the whole memory-bound sample if its refit (on the search rows, then with
  the holdout rows when export.refit_full) fits in FINAL_SHARE of the time left, else the largest
  sample whose refit does;
- the **search** gets the largest prefix of the sample (the sample is in random-key order, so a prefix
  is a uniform sample; the per-class floor rows are kept) on which TARGET_TRIALS trials of
  `n_folds` fits each fit in the rest of the time.

Trial families differ from the curve's quick model (forests cost more, the baseline less), so
TRIAL_FACTOR scales the price; the search's own budget accounting (automl/search/budget.py) then uses
each trial's measured fold times, scaled to the final sample, to keep time for that refit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

TARGET_TRIALS = 15  # trials the search should have time for: the warm start (one per family) and more
# a trial's fit vs the curve's quick HGB (max_iter=100, one thread). Measured on 50M rows (212k search rows,
# load ~8 on 2 cores) against a curve that priced a fit at 0.38 s + 51 us/row: baseline 0.5x, linear 0.8x,
# LightGBM 3x, HGB (max_iter 500) > 3x, k-NN 20x. 2 errs high for the families that usually win
TRIAL_FACTOR = 2.0
FINAL_SHARE = 0.35  # of the time left after the curve, at most, for the final refit(s)
FINAL_OVERHEAD_S = 3.0  # export to ONNX, parity check, process start
MIN_SEARCH_ROWS = 2000
# a trial may take this many times the planned trial time before it is stopped (TIMEOUT): k-NN's scoring
# grows with the square of the rows (on 361k search rows one k-NN trial ran for minutes)
TRIAL_LIMIT_FACTOR = 4.0


@dataclass
class Sizes:
    memory_rows: int  # search-side rows of the memory-bound sample
    search_rows: int
    final_rows: int  # search-side rows the final model is fitted on (plus the holdout with refit_full)
    seconds_per_fit: tuple[float, float]  # (a, b): a fit on r rows ~ a + b r seconds
    search_reason: str
    final_reason: str
    per_trial_s: float = 0.0  # the time a trial was planned to take (0: not planned)

    def to_json(self) -> dict[str, Any]:
        a, b = self.seconds_per_fit
        return {
            "memory_sample_rows": self.memory_rows,
            "search_sample_rows": self.search_rows,
            "search_sample_reason": self.search_reason,
            "final_sample_rows": self.final_rows,
            "final_sample_reason": self.final_reason,
            "fit_time_model": f"{a:.3g} s + {b * 1e6:.3g} us x rows (least squares over the learning curve's fits)",
        }


def fit_line(points: list[dict[str, float]]) -> tuple[float, float] | None:
    """(a, b) with fit seconds ~ a + b x rows over the curve's points; None without a usable slope."""
    pts = [(float(p["rows"]), float(p["fit_s"])) for p in points if p.get("fit_s") is not None]
    if not pts:
        return None
    if len(pts) == 1:
        r, s = pts[0]
        return 0.0, s / max(r, 1.0)
    r, s = np.array(pts).T
    b, a = np.polyfit(r, s, 1)
    if b <= 0:  # noise on a loaded machine: no slope visible, take the average cost per row at the top
        return 0.0, float(s[-1] / r[-1])
    return max(float(a), 0.0), float(b)


def plan(points: list[dict[str, float]], memory_rows: int, holdout_rows: int, n_folds: int, time_left: float,
         refit_full: bool) -> Sizes:
    """The search and final sizes for `time_left` seconds (search, final refit; reports excluded)."""
    time_left = max(time_left, 0.0)
    line = fit_line(points)
    if line is None:
        return Sizes(memory_rows, memory_rows, memory_rows, (0.0, 0.0),
                     "the memory-bound sample (no learning curve to price a fit)",
                     "the memory-bound sample (no learning curve to price a fit)")
    a, b = line

    def fit_s(rows: float) -> float:
        return TRIAL_FACTOR * (a + b * rows)

    def final_s(rows: float) -> float:  # refit on the search-side rows, then with the holdout rows
        return fit_s(rows) + (fit_s(rows + holdout_rows) if refit_full else 0.0) + FINAL_OVERHEAD_S

    share = FINAL_SHARE * time_left
    if final_s(memory_rows) <= share:
        final_rows = memory_rows
        final_reason = f"the whole memory-bound sample: its refit takes ~{final_s(memory_rows):.0f}s"
    else:
        fits = 1 + (1 if refit_full else 0)
        rows = (share - FINAL_OVERHEAD_S - fits * TRIAL_FACTOR * a) / (fits * TRIAL_FACTOR * b) - (
            holdout_rows / 2 if refit_full else 0)
        final_rows = int(min(max(rows, MIN_SEARCH_ROWS), memory_rows))
        final_reason = (f"the largest sample whose refit fits {FINAL_SHARE:.0%} of the {time_left:.0f}s left "
                        f"(the whole memory-bound sample would take ~{final_s(memory_rows):.0f}s)")
    search_s = max(time_left - final_s(final_rows), 0.0)
    per_trial = search_s / TARGET_TRIALS
    # n_folds fits of (k-1)/k of the rows each
    rows = (per_trial / n_folds / TRIAL_FACTOR - a) / b * n_folds / max(n_folds - 1, 1)
    search_rows = int(min(max(rows, min(MIN_SEARCH_ROWS, memory_rows)), final_rows))
    if search_rows >= memory_rows:
        search_reason = (f"the whole memory-bound sample: {TARGET_TRIALS} trials of {n_folds} folds fit in "
                         f"~{search_s:.0f}s")
    else:
        search_reason = (f"time-bound: {TARGET_TRIALS} trials of {n_folds} folds in the ~{search_s:.0f}s left for "
                         f"the search, at ~{per_trial:.1f}s a trial")
    return Sizes(memory_rows, search_rows, final_rows, (a, b), search_reason, final_reason, per_trial)


def subset(y: np.ndarray, n: int, classification: bool, floor: int) -> np.ndarray:
    """Row indices of the first n rows (a uniform sample: rows are in random-key order) plus, per class,
    its first `floor` rows, so a rare class the scan floored into the sample stays in it."""
    if n >= len(y):
        return np.arange(len(y))
    keep = np.zeros(len(y), dtype=bool)
    keep[:n] = True
    if classification:
        for c in np.unique(y):
            keep[np.flatnonzero(y == c)[:floor]] = True
    return np.flatnonzero(keep)
