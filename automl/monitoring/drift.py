"""Feature drift of new rows against the training reference profile: PSI and Jensen-Shannon distance.

A feature is flagged as drifted when its shift is large (PSI >= 0.2, the usual "significant shift"
rule of credit scoring, or Jensen-Shannon distance >= 0.1, base 2, Evidently's default) AND real
(a chi-square test of the two binned samples rejects "same distribution" at p < 0.01). The test
keeps small samples from being flagged on noise alone: with k bins and n new rows, PSI is about
(k-1)/n even without drift (0.1 at n=100 with 11 bins).
PSI 0.1-0.2 is reported as "moderate" but not flagged. Empty bins are floored at 1e-4 for PSI.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from automl.export.reference_profile import bin_feature, bin_labels

PSI_THRESHOLD = 0.2
PSI_MODERATE = 0.1
JS_THRESHOLD = 0.1
ALPHA = 0.01
EPS = 1e-4


@dataclass(frozen=True)
class Thresholds:
    psi: float = PSI_THRESHOLD
    js: float = JS_THRESHOLD
    alpha: float = ALPHA


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    kind: str
    rows: int
    psi: float
    js_distance: float
    p_value: float
    drifted: bool
    status: str  # drift | moderate | none
    top_bin: str  # the bin whose share moved most
    top_bin_ref: float
    top_bin_new: float


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.maximum(expected / max(expected.sum(), 1), EPS)
    a = np.maximum(actual / max(actual.sum(), 1), EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def js_distance(expected: np.ndarray, actual: np.ndarray) -> float:
    from scipy.spatial.distance import jensenshannon

    if expected.sum() == 0 or actual.sum() == 0:
        return float("nan")
    return float(jensenshannon(expected / expected.sum(), actual / actual.sum(), base=2))


def homogeneity_p(expected: np.ndarray, actual: np.ndarray) -> float:
    """Chi-square test that both binned samples come from one distribution."""
    from scipy.stats import chi2_contingency

    keep = (expected + actual) > 0
    if keep.sum() < 2 or actual.sum() == 0:
        return 1.0
    return float(chi2_contingency(np.vstack([expected[keep], actual[keep]]), correction=False).pvalue)


def feature_drift(feature: Mapping[str, Any], values: np.ndarray, th: Thresholds) -> FeatureDrift:
    ref = np.asarray(feature["counts"], dtype=np.float64)
    new = bin_feature(feature, values).astype(np.float64)
    p_, j_, pv = psi(ref, new), js_distance(ref, new), homogeneity_p(ref, new)
    large = p_ >= th.psi or j_ >= th.js
    drifted = bool(large and pv < th.alpha)
    status = "drift" if drifted else ("moderate" if p_ >= PSI_MODERATE and pv < th.alpha else "none")
    shares_ref, shares_new = ref / max(ref.sum(), 1), new / max(new.sum(), 1)
    i = int(np.argmax(np.abs(shares_new - shares_ref)))
    return FeatureDrift(feature["name"], feature["kind"], int(new.sum()), p_, j_, pv, drifted, status,
                        bin_labels(feature)[i], float(shares_ref[i]), float(shares_new[i]))


def compare(
    profile: Mapping[str, Any], feeds: Mapping[str, np.ndarray], th: Thresholds | None = None
) -> list[FeatureDrift]:
    th = th or Thresholds()
    return [feature_drift(f, feeds[f["name"]], th) for f in profile["features"]]


def report(results: list[FeatureDrift], th: Thresholds, rows: int) -> dict[str, Any]:
    return {"rows": rows, "thresholds": asdict(th), "drifted": [r.name for r in results if r.drifted],
            "features": [asdict(r) for r in results]}
