"""Recreate the small test files in this folder from ../shared/datasets (seed 0, original columns).

    python tests/data/make_data.py [/path/to/shared/datasets]

Tests never run this; they read the CSV files committed next to it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent
SRC = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2] / "shared" / "datasets"
N = 600
SEED = 0


def stratified(df: pd.DataFrame, target: str) -> pd.DataFrame:
    keep, _ = train_test_split(df.index.to_numpy(), train_size=N, stratify=df[target], random_state=SEED)
    return df.loc[sorted(keep)]


def main() -> None:
    penguins = pd.read_csv(SRC / "penguins.csv")
    penguins.to_csv(HERE / "penguins.csv", index=False)
    stratified(pd.read_csv(SRC / "medpar.csv"), "died").to_csv(HERE / "medpar_600.csv", index=False)
    stratified(pd.read_csv(SRC / "aids.csv"), "status").to_csv(HERE / "aids_600.csv", index=False)
    slid = pd.read_csv(SRC / "slid_wages.csv")
    slid.sample(n=N, random_state=SEED).sort_index().to_csv(HERE / "slid_wages_600.csv", index=False)
    doctor = pd.read_csv(SRC / "doctor_contacts.csv")
    doctor.sample(n=2000, random_state=SEED).sort_index().to_csv(HERE / "doctor_contacts_2000.csv", index=False)


if __name__ == "__main__":
    main()
