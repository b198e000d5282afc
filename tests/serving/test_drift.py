"""`automl drift`: a shifted feature is flagged, an unshifted sample is not; schema errors exit 2."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from automl.export.reference_profile import build_reference_profile, prepare
from automl.monitoring.drift import Thresholds, compare, js_distance, psi
from tests.cli_runner import run_cli
from tests.serving.conftest import PENGUINS


def test_psi_and_js_values():
    e = np.array([50.0, 50.0])
    assert psi(e, e) == 0 and js_distance(e, e) == 0
    # PSI by hand: (0.7-0.5) ln(0.7/0.5) + (0.3-0.5) ln(0.3/0.5)
    assert psi(e, np.array([70.0, 30.0])) == pytest.approx(0.2 * np.log(1.4) - 0.2 * np.log(0.6))
    assert js_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)  # disjoint, base 2


def test_reference_profile_holds_no_raw_rows(serving_runs):
    prof = json.loads((serving_runs["linear"] / "reference_profile.json").read_text())
    assert prof["rows"] == 344
    assert {f["name"] for f in prof["features"]} == {"island", "bill_length_mm", "bill_depth_mm",
                                                      "flipper_length_mm", "body_mass_g", "sex", "year"}
    for f in prof["features"]:
        assert sum(f["counts"]) == 344 and len(f["counts"]) == len(f["bins"])
        assert len(f.get("edges", [])) <= 9  # deciles at most, never the values themselves
    m = json.loads((serving_runs["linear"] / "manifest.json").read_text())
    assert len(m["final"]["reference_profile_sha256"]) == 64


def test_small_unshifted_samples_are_not_flagged():
    """The chi-square guard: 100 rows drawn from the training distribution are not drift, for 20 seeds."""
    rng = np.random.default_rng(0)
    ref = {"x": rng.normal(size=(5000, 1)).astype(np.float32),
           "c": rng.choice(["a", "b", "c"], size=(5000, 1), p=[0.6, 0.3, 0.1]).astype(object)}
    schema = [{"name": "x", "kind": "numeric", "dtype": "float32"},
              {"name": "c", "kind": "categorical", "dtype": "string"}]
    prof = build_reference_profile(ref, schema)
    for f in prof["features"]:
        prepare(f)
    flagged = 0
    for seed in range(20):
        r = np.random.default_rng(seed + 1)
        new = {"x": r.normal(size=(100, 1)).astype(np.float32),
               "c": r.choice(["a", "b", "c"], size=(100, 1), p=[0.6, 0.3, 0.1]).astype(object)}
        flagged += sum(d.drifted for d in compare(prof, new, Thresholds()))
    assert flagged <= 1
    new = {"x": (np.random.default_rng(99).normal(size=(100, 1)) + 0.8).astype(np.float32),
           "c": np.full((100, 1), "zzz", dtype=object)}  # mean shift; a level never seen in training
    res = {d.name: d for d in compare(prof, new, Thresholds())}
    assert res["x"].drifted and res["c"].drifted and res["c"].top_bin == "__unseen__"


def test_drift_cli(serving_runs, tmp_path):
    run = serving_runs["linear"]
    df = pd.read_csv(PENGUINS)
    same = tmp_path / "same.csv"
    df.sample(frac=0.5, random_state=1).to_csv(same, index=False)
    shifted = df.sample(frac=0.5, random_state=2)
    shifted["flipper_length_mm"] = shifted["flipper_length_mm"] * 1.1
    shift = tmp_path / "shift.csv"
    shifted.to_csv(shift, index=False)

    p = run_cli("drift", "--model", str(run), "--data", str(same), timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "drift in 0 of 7 feature(s)" in p.stdout

    report = tmp_path / "report.json"
    p = run_cli("drift", "--model", str(run), "--data", str(shift), "--json", str(report), timeout=60)
    assert p.returncode == 1, p.stdout + p.stderr
    rep = json.loads(report.read_text())
    assert rep["drifted"] == ["flipper_length_mm"]
    flip = next(f for f in rep["features"] if f["name"] == "flipper_length_mm")
    assert flip["psi"] >= 0.2 and flip["p_value"] < 0.01

    bad = tmp_path / "bad.csv"
    df.drop(columns=["island"]).to_csv(bad, index=False)
    p = run_cli("drift", "--model", str(run), "--data", str(bad), timeout=60)
    assert p.returncode == 2 and "column 'island'" in p.stderr and "Traceback" not in p.stderr
