"""A related-table layout from featuretools' bundled mock customer data (generated offline, seeded).

    python tests/data/make_mock_customer.py [out_dir]   # default: automl/demo/mock_customer

Tables: customers (index customer_id, time join_date) <- sessions (session_id, session_start)
<- transactions (transaction_id, transaction_time) -> products (product_id). The target table is
`sessions`; its target `big_session` is 1 when the session's total transaction amount is above the
median session total. At a session's start only transactions at or before that moment are known.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pandas as pd

SIZES = {"n_customers": 40, "n_products": 5, "n_sessions": 400, "n_transactions": 4000}


def make(out_dir: Path, seed: int = 0, sizes: dict[str, int] | None = None) -> dict[str, Path]:
    import featuretools as ft

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = ft.demo.load_mock_customer(random_seed=seed, **(sizes or SIZES))
    sessions = d["sessions"].copy()
    total = d["transactions"].groupby("session_id")["amount"].sum()
    sessions["big_session"] = (sessions["session_id"].map(total).fillna(0) > total.median()).astype(int)
    tables = {"customers": d["customers"], "sessions": sessions, "transactions": d["transactions"],
              "products": d["products"]}
    out_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, df in tables.items():
        df = df.copy()
        for c in df.columns:
            if isinstance(df[c].dtype, pd.CategoricalDtype):
                df[c] = df[c].astype(df[c].cat.categories.dtype)
        out[name] = out_dir / f"{name}.csv"
        df.to_csv(out[name], index=False)
    return out


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[2]
    print(make(Path(sys.argv[1]) if len(sys.argv) > 1 else root / "automl" / "demo" / "mock_customer"))
