"""A run's driver on one CSV file imports pandas without pyarrow (~34 MB less in it and in every trial forked
from it: automl/lean.py), and pandas still does what the engine asks of it; pyarrow stays importable.
Each case runs in a fresh interpreter, as the `automl` command does."""
from __future__ import annotations

from pathlib import Path

from tests.cli_runner import python_json

DRIVER = """
import json, sys
import numpy as np
from automl.lean import arrow_free_source, import_pandas_without_arrow
path = sys.argv[1]
out = {"arrow_free": arrow_free_source(path)}
if out["arrow_free"]:
    out["hidden"] = import_pandas_without_arrow()
import pandas as pd
import automl.run  # the engine's modules, as the command imports them next
out["pyarrow_after_engine_import"] = "pyarrow" in sys.modules
df = pd.read_csv(path) if path.endswith(".csv") else pd.read_parquet(path)
freq = df["c"].astype("string").fillna("").value_counts(normalize=True)  # the engine's cardinality check
out["freq"] = {str(k): round(float(v), 3) for k, v in freq.items()}
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
out["onehot_cols"] = int(make_pipeline(OneHotEncoder()).fit_transform(df[["c"]]).shape[1])
out["pyarrow_before_use"] = "pyarrow" in sys.modules
import pyarrow as pa  # still importable by what asks for it
out["arrow_rows"] = pa.Table.from_pandas(df).num_rows
print("OUT " + json.dumps(out))
"""


def _run(path: Path) -> dict[str, object]:
    return python_json(DRIVER, str(path))


def test_csv_run_driver_holds_no_pyarrow(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,c\n1,x\n2,y\n3,\n4,x\n")
    out = _run(path)
    assert out["arrow_free"] and out["hidden"]
    assert not out["pyarrow_after_engine_import"] and not out["pyarrow_before_use"]
    assert out["freq"] == {"x": 0.5, "y": 0.25, "": 0.25}
    assert out["onehot_cols"] == 3 and out["arrow_rows"] == 4


def test_parquet_run_keeps_pandas_with_arrow(tmp_path):
    import pandas as pd

    path = tmp_path / "d.parquet"
    pd.DataFrame({"a": [1, 2, 3, 4], "c": ["x", "y", None, "x"]}).to_parquet(path)
    out = _run(path)
    assert not out["arrow_free"] and out["pyarrow_after_engine_import"]
    assert out["freq"] == {"x": 0.5, "y": 0.25, "": 0.25} and out["arrow_rows"] == 4
