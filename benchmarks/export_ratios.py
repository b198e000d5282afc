"""Each family's export seconds per fold-fit second, from the trials that run folders exported.

    python benchmarks/export_ratios.py RUN_DIR_OR_GLOB...

A trial not exported by the search is priced for the final stage by its fold fit time times this ratio
(EstimatorSpec.export_ratio, search/loop.py estimated_export_s). Reads each run folder's trials.csv, keeps
the completed trials whose export was measured (not `export_estimated`), and prints per family the number
of trials, the median ratio (what the registry records) and its quartiles and 90th percentile.
"""
from __future__ import annotations

import glob
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def ratios(run_dirs: list[Path]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for d in run_dirs:
        f = d / "trials.csv"
        if not f.is_file():
            continue
        t = pd.read_csv(f)
        if "user_attrs_export_s" not in t or "user_attrs_fold_fit_s" not in t:
            continue
        measured = t["user_attrs_export_s"].notna() & t["user_attrs_fold_fit_s"].notna()
        if "user_attrs_export_estimated" in t:
            measured &= t["user_attrs_export_estimated"].isna()
        for _, r in t[measured].iterrows():
            out.setdefault(str(r["params_family"]), []).append(
                float(r["user_attrs_export_s"]) / max(float(r["user_attrs_fold_fit_s"]), 0.01))
    return out


def main(args: list[str]) -> int:
    dirs = sorted({Path(p) for a in args for p in (glob.glob(a) or [a])})
    found = ratios(dirs)
    print(f"{len(dirs)} run folders")
    print("| family | trials | median | q25 | q75 | p90 |")
    print("|---|---|---|---|---|---|")
    for fam, v in sorted(found.items()):
        q = np.quantile(v, [0.5, 0.25, 0.75, 0.9])
        print(f"| {fam} | {len(v)} | {q[0]:.2f} | {q[1]:.2f} | {q[2]:.2f} | {q[3]:.2f} |")
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
