"""Search and final sample sizes on sampled data (automl/search/sample_size.py): priced from the learning
curve's fit times, the search gets a time-bound prefix, the final model as much as its time share allows,
and the memory-bound sample is the ceiling of both."""

from __future__ import annotations

import numpy as np
import pytest

from automl.search import sample_size as ss
from automl.search.budget import final_cost

# a quick model that costs 0.5 s + 100 us per row (what a loaded 2-core machine measured for HGB)
CURVE = [{"rows": r, "fit_s": 0.5 + 1e-4 * r} for r in (10_000, 20_000, 40_000)]


def test_fit_line_recovers_the_cost_per_row():
    a, b = ss.fit_line(CURVE)
    assert a == pytest.approx(0.5) and b == pytest.approx(1e-4)
    assert ss.fit_line([{"rows": 1000, "fit_s": 2.0}]) == (0.0, 2e-3)
    assert ss.fit_line([]) is None
    # no visible slope (noise): the average cost per row at the top
    assert ss.fit_line([{"rows": 1000, "fit_s": 2.0}, {"rows": 2000, "fit_s": 1.0}]) == (0.0, 1.0 / 2000)


def test_a_short_budget_searches_a_prefix_and_refits_on_the_whole_sample():
    s = ss.plan(CURVE, memory_rows=900_000, holdout_rows=200_000, n_folds=3, time_left=500, refit_full=True)
    # final: f * (0.5 + 1e-4 * 900k) + f * (0.5 + 1e-4 * 1.1M) + 3 s (f = 2: 405 s) > 35% of 500 s: cut down
    assert ss.TRIAL_FACTOR >= 1.0 and s.final_rows < 900_000
    final_s = ss.TRIAL_FACTOR * (2 * 0.5 + 1e-4 * (2 * s.final_rows + 200_000)) + ss.FINAL_OVERHEAD_S
    assert final_s == pytest.approx(ss.FINAL_SHARE * 500, rel=0.01)
    # search: TARGET_TRIALS trials of 3 folds on 2/3 of the rows in what is left
    per_trial = (500 - final_s) / ss.TARGET_TRIALS
    assert 3 * ss.TRIAL_FACTOR * (0.5 + 1e-4 * s.search_rows * 2 / 3) == pytest.approx(per_trial, rel=0.01)
    assert ss.MIN_SEARCH_ROWS < s.search_rows < s.final_rows and s.per_trial_s == pytest.approx(per_trial)
    assert "time-bound" in s.search_reason and "largest sample" in s.final_reason
    assert s.to_json()["memory_sample_rows"] == 900_000


def test_a_long_budget_uses_the_memory_bound_sample_for_both():
    s = ss.plan(CURVE, memory_rows=50_000, holdout_rows=12_000, n_folds=3, time_left=3600, refit_full=True)
    assert s.search_rows == s.final_rows == 50_000 and "whole memory-bound sample" in s.search_reason


def test_sizes_never_go_below_the_floor_or_above_memory():
    tiny = ss.plan(CURVE, memory_rows=900_000, holdout_rows=1000, n_folds=5, time_left=5, refit_full=False)
    assert tiny.search_rows == ss.MIN_SEARCH_ROWS and tiny.final_rows >= tiny.search_rows
    small = ss.plan(CURVE, memory_rows=1500, holdout_rows=300, n_folds=3, time_left=5, refit_full=True)
    assert small.search_rows == small.final_rows == 1500
    none = ss.plan([], memory_rows=1234, holdout_rows=300, n_folds=3, time_left=100, refit_full=True)
    assert none.search_rows == none.final_rows == 1234


def test_subset_is_a_prefix_that_keeps_every_class_floor():
    rng = np.random.default_rng(0)
    y = (rng.random(10_000) < 0.01).astype(int)  # rare class 1
    y[-30:] = 1  # floor rows the scan appends after the uniform sample
    idx = ss.subset(y, 1000, True, floor=50)
    assert np.all(idx[:1000] == np.arange(1000)) and np.all(np.diff(idx) > 0)
    assert (y[idx] == 1).sum() == min(50, (y == 1).sum())
    assert len(ss.subset(y, 1000, False, floor=50)) == 1000
    assert len(ss.subset(y, 20_000, True, floor=50)) == len(y)


def test_final_cost_scales_with_the_final_sample():
    attrs = {"fold_fit_s": 2.0, "export_s": 0.5}
    one, four = final_cost(attrs, 3, True), final_cost(attrs, 3, True, scale=4.0)
    assert four > 3.5 * (one - 0.5)  # fit and export grow with the rows; the constant does not
    # a trial whose time went to scoring (k-NN: 3 fits of 1.6 s in a 220 s trial) is priced by it
    knn = {"fold_fit_s": 1.6, "export_s": 1.5, "seconds": 220.0}
    assert final_cost(knn, 3, True) > 1.2 * (220 - 4.8) / 3 and final_cost(knn, 3, True, 3.6) > 250


def test_a_large_sampled_refit_prices_the_holdout_by_its_rows_not_by_the_product_of_both_scales():
    """A sampled run refits on 58x the search rows and scores a holdout 138x a fold: the fold's overhead
    (process, transforms) is paid once, the holdout's rows at the trial's measured cost per row, and only
    k-NN's prediction cost grows with the training rows."""
    attrs = {"fold_fit_s": 0.05, "export_s": 0.1, "seconds": 1.2, "predict_ms_per_row": 0.002}
    old = final_cost(attrs, 3, True, scale=58.0, holdout_scale=138.0)
    new = final_cost(attrs, 3, True, scale=58.0, holdout_scale=138.0, holdout_rows=46_000)
    assert old > 2000 and new < 0.1 * old
    assert new > 1.2 * 0.002 / 1000 * 2 * 46_000  # the holdout is still priced
    knn = final_cost(attrs, 3, True, scale=58.0, holdout_scale=138.0, holdout_rows=46_000, grows=True)
    assert knn > new + 1.2 * 0.002 / 1000 * 2 * 46_000 * 50
