"""The one-pass scan (automl/data/scan.py): streamed statistics agree with pandas on the whole frame,
samples are disjoint and of the asked size, Parquet folders read as one table, and memory sizing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from automl.data import scan as scan_mod
from automl.data import source as source_mod
from automl.data.large import load_for_run
from automl.data.load import file_sha256, read_table
from automl.data.profile import QUANTILES, build_profile
from automl.data.roles import infer_schema
from automl.data.source import open_source
from automl.errors import UserError
from automl.memory import (
    MIN_TRIAL_MB,
    TRIAL_OVERHEAD_MB,
    MemoryBudget,
    data_allowance_mb,
    held_mb,
    members_memory,
    over_limit,
    process_mb,
    refit_need_mb,
    row_cost,
    rows_for,
    rows_within,
    trial_limit_mb,
    trial_memory_mb,
)


def _frame(n: int = 5000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = np.round(rng.lognormal(1.0, 0.8, n), 2)  # below the sketch size: distinct counts are exact
    x[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "income": x,
            "age": rng.integers(18, 90, n),
            "city": rng.choice(
                ["berlin", "paris", "rome", "oslo", "lima", "kyiv"], n, p=[0.4, 0.2, 0.15, 0.1, 0.1, 0.05]
            ),
            "code": np.where(rng.random(n) < 0.05, None, rng.integers(0, 9000, n).astype(str)).astype(object),
            "y": (rng.random(n) < 0.1).astype(int),
        }
    )


@pytest.fixture()
def small_blocks(monkeypatch):
    monkeypatch.setattr(
        source_mod, "BLOCK_BYTES", 1 << 14
    )  # many CSV blocks: the merge across batches is tested


def _check_against_pandas(res: scan_mod.ScanResult, df: pd.DataFrame) -> None:
    assert res.n_rows == len(df) and res.missing_target == 0
    for c in ("income", "age"):
        st, v = res.columns[c], df[c].astype(float)
        assert st["missing_pct"] == round(100 * v.isna().mean(), 2)
        assert st["cardinality"] == v.nunique() and st["cardinality_exact"]
        for k, want in (("mean", v.mean()), ("std", v.std()), ("min", v.min()), ("max", v.max())):
            assert st[k] == pytest.approx(want, rel=1e-9), (c, k)
        # approximate quantiles: within 2 percentile points of the exact ones
        vals = np.sort(v.dropna().to_numpy())
        for q in QUANTILES:
            rank = np.searchsorted(vals, st["quantiles"][str(q)]) / len(vals)
            assert abs(rank - q) < 0.02, (c, q, rank)
    city = res.columns["city"]
    assert city["top_values"] == {k: int(n) for k, n in df["city"].value_counts().head(5).items()}
    assert city["cardinality"] == 6 and city["missing_pct"] == 0
    code = res.columns["code"]
    assert code["missing_pct"] == round(100 * df["code"].isna().mean(), 2)
    assert code["cardinality"] == df["code"].nunique() and code["cardinality_exact"]
    assert res.target_counts == {str(k): int(n) for k, n in df["y"].value_counts().items()}


def test_streamed_statistics_match_pandas_on_csv(tmp_path, small_blocks):
    df = _frame()
    df.to_csv(tmp_path / "d.csv", index=False)
    res = scan_mod.scan(open_source(str(tmp_path / "d.csv")), "y", 1000, 250, 0.2, 0)
    _check_against_pandas(res, df)


def test_streamed_statistics_match_pandas_on_a_parquet_folder(tmp_path):
    df = _frame()
    (tmp_path / "parts").mkdir()
    for i, part in enumerate(np.array_split(df, 4)):
        part.to_parquet(tmp_path / "parts" / f"part-{i}.parquet", index=False)
    src = open_source(str(tmp_path / "parts"))
    assert len(src.files) == 4 and src.kind == "parquet"
    _check_against_pandas(scan_mod.scan(src, "y", 1000, 250, 0.2, 0), df)
    whole = read_table(str(tmp_path / "parts"))  # the folder also reads whole, as one table
    pd.testing.assert_frame_equal(whole, df.reset_index(drop=True), check_dtype=False)
    assert len(file_sha256(str(tmp_path / "parts"))) == 64


def test_distinct_count_is_approximate_above_the_sketch(tmp_path):
    n = 30_000
    pd.DataFrame({"u": np.arange(n) * 1.5, "y": np.arange(n) % 2}).to_parquet(tmp_path / "u.parquet")
    res = scan_mod.scan(open_source(str(tmp_path / "u.parquet")), "y", 100, 20, 0.2, 0)
    st = res.columns["u"]
    assert not st["cardinality_exact"] and abs(st["cardinality"] - n) / n < 0.06


def test_samples_are_sized_disjoint_and_keep_rare_classes(tmp_path, small_blocks):
    rng = np.random.default_rng(1)
    n = 20_000
    df = pd.DataFrame(
        {"id_": np.arange(n), "x": rng.normal(size=n), "y": np.where(rng.random(n) < 0.004, "rare", "common")}
    )
    df.loc[rng.random(n) < 0.01, "y"] = None  # missing targets are dropped and counted
    df.to_csv(tmp_path / "d.csv", index=False)
    res = scan_mod.scan(open_source(str(tmp_path / "d.csv")), "y", 800, 200, 0.2, 0)
    assert res.missing_target == int(df["y"].isna().sum()) and res.n_rows == n - res.missing_target
    n_rare_search = int((res.search["y"] == "rare").sum())
    assert len(res.holdout) == 200 and 800 <= len(res.search) <= 800 + scan_mod.CLASS_FLOOR
    assert not set(res.search["id_"]) & set(res.holdout["id_"])  # the holdout never overlaps the search
    assert res.search["id_"].is_unique
    total_rare = int((df["y"] == "rare").sum())
    assert n_rare_search >= min(scan_mod.CLASS_FLOOR, int(0.7 * total_rare))  # floor: most rare rows reach it
    assert res.search["id_"].dtype == np.int64  # integers read back as pandas would
    # seeded: the same scan gives the same rows
    again = scan_mod.scan(open_source(str(tmp_path / "d.csv")), "y", 800, 200, 0.2, 0)
    assert list(again.search["id_"]) == list(res.search["id_"])


def test_load_for_run_reads_small_data_whole_and_samples_over_budget(tmp_path):
    df = _frame(4000)
    df.to_csv(tmp_path / "d.csv", index=False)
    big = MemoryBudget(100_000, "test")
    whole, sampled = load_for_run(str(tmp_path / "d.csv"), "y", big, 1, 0.2, 0)
    assert sampled is None and len(whole) == 4000
    tiny = MemoryBudget(1, "test")  # nothing left for data: the floor sample
    part, sampled = load_for_run(str(tmp_path / "d.csv"), "y", tiny, 1, 0.2, 0)
    assert sampled is not None and sampled.info["sample_floor_used"]
    assert 2000 <= len(part) <= 2000 + scan_mod.CLASS_FLOOR  # the floor sample, plus rows of the rarer class
    tr, ho = sampled.split()
    assert len(tr) == sampled.n_search and len(ho) == 400
    schema = infer_schema(part, "y", [], [])
    prof = sampled.merge_profile(build_profile(part, "y", "binary", schema, 0), "y", "binary")
    assert prof["n_rows"] == 4000 and prof["streamed"]["sample_rows"] == len(part)
    assert prof["target"]["classes"] == {str(k): int(v) for k, v in df["y"].value_counts().items()}
    inc = next(c for c in prof["columns"] if c["name"] == "income")
    assert inc["mean"] == pytest.approx(df["income"].mean())


def test_memory_budget_arithmetic():
    b = MemoryBudget(2000, "test")
    allow = data_allowance_mb(b, 300, 1)
    assert allow == pytest.approx((0.9 * 2000 - 300 - TRIAL_OVERHEAD_MB) / 9)
    limit, floored = trial_limit_mb(b, 300 + 4 * allow, 1)
    assert not floored and 300 + 4 * allow + limit == pytest.approx(2000 - 0.1 * (2000 - 300 - 4 * allow))
    assert trial_limit_mb(MemoryBudget(300, "t"), 290, 2) == (MIN_TRIAL_MB, True)


def test_rows_are_sized_by_what_a_row_costs():
    """The sample is as large as the budget holds at the measured bytes per row: the driver's copies and
    each worker's trial copies of every row, after the driver, the trials' overhead and the reserve."""
    b = MemoryBudget(400, "t")
    rows = rows_for(b, 240, 1, 200.0)
    spent = 240 + TRIAL_OVERHEAD_MB + rows * 200.0 * 9 / 2**20
    assert spent <= 0.9 * 400 < spent + 200.0 * 9 / 2**20  # the most rows that fit, no more
    assert rows_for(b, 240, 2, 200.0) < rows  # a second worker's trial copies and overhead cost rows
    assert rows_for(MemoryBudget(800, "t"), 240, 1, 200.0) > 2 * rows  # the budget pays past the fixed costs
    assert rows_for(b, 240, 1, 100.0) == pytest.approx(2 * rows, abs=1)  # compact rows: twice as many
    assert rows_for(b, 390, 1, 200.0) == 0  # nothing left after the driver
    rc = row_cost(b, 240, 1, 200.0)
    assert rc["rows_the_budget_holds"] == rows and rc["budget_bytes_per_row"] == 1800.0
    assert rc["rows_per_100_mb_more"] == int(100 * 2**20 / 1800)


def test_a_refit_is_priced_by_its_trials_measured_peak_and_sized_to_the_limit():
    """A refit's pages scale from the largest measured member peak by the rows; the rows a refit gets are the
    most that stay within the limit, never fewer than the trial's own fold rows (which fitted within it)."""
    assert refit_need_mb([90.0, None, 60.0], 1000, 1500) == pytest.approx(135.0)
    assert refit_need_mb([90.0], 1000, 800) == pytest.approx(90.0)  # fewer rows than the trial: its peak
    assert refit_need_mb([None], 1000, 1500) is None and refit_need_mb([], 1000, 1500) is None
    assert rows_within([90.0, 60.0], 1000, 121.0, 1250) == 1250  # 1250 rows need 112.5 MB: all fit
    assert rows_within([100.0], 1000, 121.0, 2000) == 1210
    assert rows_within([130.0], 1000, 121.0, 2000) == 1000  # over the limit already: the trial's own rows
    # an ensemble: the largest member's peak plus what the others hold beside it (their own peak's member excluded)
    assert refit_need_mb([90.0, 60.0], 1000, 1500, held=[40.0, 10.0]) == pytest.approx(150.0)
    assert rows_within([90.0, 60.0], 1000, 121.0, 2000, held=[40.0, 10.0]) == 1210
    assert held_mb({"onnx_bytes": 5_000_000}) == pytest.approx(10.0) and held_mb({}) == 0.0
    assert rows_within([100.0], 1000, 0.0, 2000) == 2000 and rows_within([None], 1000, 121.0, 2000) == 2000


def test_the_export_stack_a_refit_loads_is_priced_once_and_not_scaled_by_rows():
    """The refit exports, loading the export stack the driver does not hold. A trial that exported measured it
    (`stack_mb`) inside its peak: that part is fixed, so it is taken out of the peak before the rows scale it,
    and added once."""
    attrs = [{"peak_mb": 90.0}, {"peak_mb": 110.0, "onnx_bytes": 1_000_000, "stack_mb": 50.0}, {}]
    parts = members_memory(attrs, stack_mb=50.0)
    assert parts["peaks"] == [90.0, 60.0, None] and parts["held"] == [0.0, 2.0, 0.0] and parts["stack"] == 50.0
    assert refit_need_mb(**parts, trial_rows=1000, refit_rows=2000) == pytest.approx((90.0 + 2.0) * 2 + 50.0)
    assert rows_within(**parts, trial_rows=1000, limit_mb=142.0, rows=5000) == 1000  # 92 MB + 50 fit at 1000
    assert rows_within(**parts, trial_rows=1000, limit_mb=234.0, rows=5000) == 2000
    assert "plus the 50 MB export stack it loads" in over_limit("x", **parts, trial_rows=1000, refit_rows=3000,
                                                                 limit_mb=234.0)
    assert members_memory(attrs)["stack"] == 0.0 and refit_need_mb([90.0], 1000, 1000) == 90.0

def test_a_budget_below_the_driver_is_refused_not_exceeded():
    with pytest.raises(UserError) as e:
        trial_memory_mb(0, MemoryBudget(10, "budget.memory_mb"))  # this process alone is over 10 MB
    assert e.value.where == "budget.memory_mb" and "Raise budget.memory_mb to at least" in e.value.fix
    assert "n_workers" not in e.value.fix  # one worker: fewer is not a way out
    with pytest.raises(UserError) as e:
        trial_memory_mb(0, MemoryBudget(10, "budget.memory_mb"), n_workers=2)
    assert "or use fewer search.n_workers" in e.value.fix
    least = int(e.value.fix.split("at least ")[1].split(",")[0])
    assert trial_limit_mb(MemoryBudget(least, "t"), process_mb(), 2)[1] is False  # the fix it names is enough
    assert trial_memory_mb(300, MemoryBudget(10, "t")) == 300  # a fixed trial limit is the user's call


def test_a_regression_sample_drops_the_scans_per_value_floor_rows(tmp_path):
    """A count target (few distinct values) gets per-value floor rows from the scan: they over-represent its
    rare values, so a regression keeps only the uniform rows; a classification keeps them."""
    rng = np.random.default_rng(0)
    n = 6000
    df = pd.DataFrame({"x": rng.normal(size=n), "y": np.minimum(rng.poisson(0.3, n) * (1 + (rng.random(n) < 0.01) * 20),
                                                                40)})
    df.to_csv(tmp_path / "c.csv", index=False)
    part, sampled = load_for_run(str(tmp_path / "c.csv"), "y", MemoryBudget(100_000, "t"), 1, 0.2, 0, max_rows=2500)
    assert sampled is not None and 0 < sampled.scan.n_uniform < sampled.n_search  # floor rows were added
    tr, _ = sampled.split("regression")
    assert len(tr) == sampled.scan.n_uniform == sampled.info["memory_sample_rows"]
    floor_part = part.iloc[sampled.scan.n_uniform:sampled.n_search]
    assert floor_part["y"].mean() > 2 * part.iloc[tr]["y"].mean()  # what was dropped: the skewed rows
    assert len(sampled.split("binary")[0]) == sampled.n_search


def test_scanned_batches_are_sized_by_what_a_row_holds_in_memory():
    from automl.data.scan import BATCH_MB, MAX_BATCH_ROWS, MIN_BATCH_ROWS, batch_rows_for

    narrow, wide = batch_rows_for(200.0), batch_rows_for(2000.0)
    assert narrow > wide and abs(wide * 2000.0 - BATCH_MB * 2**20) < 2000.0
    assert batch_rows_for(0.0) == MAX_BATCH_ROWS == batch_rows_for(1.0)
    assert batch_rows_for(1e9) == MIN_BATCH_ROWS
