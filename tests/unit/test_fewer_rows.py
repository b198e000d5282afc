"""A search sample cut to fewer rows keeps a rung its folds can hold (stages/search.py fewer_rows).

Under a loaded CI machine a 45 s run under budget.memory_mb scanned its 1.2 GB file in 19.7 s; the few seconds
left cut the 41,025-row sample to 2,000 search rows, whose one inner split holds ~1,600 training rows, while
the rung still asked for the 8,000 of the larger sample: every trial failed drawing it ("Cannot take a larger
sample than population") and the run shipped nothing."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from automl.data.roles import infer_schema, to_model_frame
from automl.data.split import cv_folds
from automl.evaluation.metrics import get_metric
from automl.search.objective import SearchData
from automl.search.rung import MIN_RUNG_ROWS, rung_rows, rung_sample
from automl.stages.search import fewer_rows


def _data(n: int) -> SearchData:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = df["a"].to_numpy() + rng.normal(size=n)
    schema = infer_schema(df.assign(y=y), "y", [], [])
    folds = cv_folds(y, "regression", 1, 0)
    return SearchData(X=to_model_frame(df, schema), y=y, folds=folds, schema=schema, missing_numeric=[],
                      task="regression", metric=get_metric("rmse"), n_classes=0, seed=0, families=["linear"],
                      n_jobs=1, rung_rows=rung_rows(folds, "median"))


def test_a_sample_cut_below_the_rung_drops_it_and_one_that_holds_it_keeps_a_rung_it_can_draw():
    big = _data(41_025)
    assert big.rung_rows > 8_000
    small = fewer_rows(big, 2_000, seed=0)
    assert len(small.y) == 2_000 and small.rung_rows == 0  # ~1,600 training rows: too few for a rung
    mid = fewer_rows(big, 12_000, seed=0)
    train = mid.folds[0][0]
    assert MIN_RUNG_ROWS <= mid.rung_rows <= len(train) < big.rung_rows * 2
    assert len(rung_sample(train, mid.rung_rows, 0)) == mid.rung_rows  # what each trial draws
    no_rung = fewer_rows(dataclasses.replace(big, rung_rows=0), 12_000, seed=0)
    assert no_rung.rung_rows == 0  # the pruner was off: it stays off
