"""`automl drift --model RUN_DIR --data new.csv`: per-feature PSI and Jensen-Shannon distance vs training.

Exit codes: 0 no feature drifted, 1 at least one drifted, 2 a schema error (missing column, wrong type)
or another user error. Thresholds are documented in automl/monitoring/drift.py and the README.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from automl.data.load import read_table
from automl.export.contract import feeds_from_frame
from automl.export.reference_profile import load_reference_profile
from automl.io import write_json
from automl.monitoring.drift import ALPHA, JS_THRESHOLD, PSI_THRESHOLD, Thresholds, compare, report
from automl.monitoring.profile_source import reference_profile_path
from automl.serving.model_store import default_root


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="automl drift",
                                 description="Feature drift of new data against the training profile.")
    ap.add_argument("--model", required=True, help="run folder (or NAME@stage / NAME@vN from the registry)")
    ap.add_argument("--data", required=True, help="CSV or Parquet with the model's input columns")
    ap.add_argument("--registry", default=None, help="registry root (default: $AUTOML_REGISTRY or ~/.automl/registry)")
    ap.add_argument("--psi-threshold", type=float, default=PSI_THRESHOLD, help="flag at PSI >= this (default 0.2)")
    ap.add_argument("--js-threshold", type=float, default=JS_THRESHOLD,
                    help="or at Jensen-Shannon distance >= this (default 0.1)")
    ap.add_argument("--alpha", type=float, default=ALPHA,
                    help="and only when a chi-square test rejects 'same distribution' at p < alpha (default 0.01)")
    ap.add_argument("--json", default=None, metavar="FILE", help="also write the report as JSON")
    a = ap.parse_args(argv)
    registry_root = Path(a.registry).expanduser() if a.registry else default_root()
    profile = load_reference_profile(reference_profile_path(a.model, registry_root))
    df = read_table(a.data, "--data")
    feeds = feeds_from_frame(df, profile["input_schema"], where="--data")  # schema errors -> exit 2
    th = Thresholds(a.psi_threshold, a.js_threshold, a.alpha)
    results = compare(profile, feeds, th)
    rep = report(results, th, len(df))
    print(f"{len(df)} rows vs {profile['rows']} training rows; drift = (PSI >= {th.psi:g} or JS >= {th.js:g}) "
          f"and chi-square p < {th.alpha:g}")
    print(f"{'feature':<28} {'kind':<12} {'PSI':>8} {'JS dist':>8} {'p-value':>9}  status    largest shift")
    for r in results:
        shift = f"{r.top_bin}: {r.top_bin_ref:.1%} -> {r.top_bin_new:.1%}"
        js = "nan" if math.isnan(r.js_distance) else f"{r.js_distance:.3f}"
        print(f"{r.name[:28]:<28} {r.kind:<12} {r.psi:>8.3f} {js:>8} {r.p_value:>9.2g}  {r.status:<9} {shift}")
    for s in profile.get("not_profiled", []):
        print(f"{s['name'][:28]:<28} not checked: {s['reason']}")
    if a.json:
        write_json(Path(a.json), rep)
    drifted = rep["drifted"]
    print(f"drift in {len(drifted)} of {len(results)} feature(s)" + (f": {', '.join(drifted)}" if drifted else ""))
    return 1 if drifted else 0
