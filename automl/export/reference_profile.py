"""The reference profile: what the training features looked like, binned, with no raw rows.

Written at export as `reference_profile.json` in the run folder. Numeric features keep the
training deciles as bin edges plus the share of rows per bin and the missing share; categorical
features keep the share of each of their most frequent levels, of all other training levels
(`__other__`), of levels never seen in training (`__unseen__`, 0 in the reference) and of missing
values. Drift (automl/monitoring/drift.py) bins new rows with the same edges and levels.
Text features are not profiled (free text has no stable bins); the profile says so.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from automl.export.contract import feeds_from_frame
from automl.io import RunPaths, write_bytes

FORMAT = 1
N_QUANTILE_BINS = 10
MAX_LEVELS = 30
OTHER, UNSEEN, MISSING = "__other__", "__unseen__", "__missing__"


def numeric_bins(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Bin index per value: 0..len(edges) for finite values (bin i holds edges[i-1] <= v < edges[i]),
    len(edges)+1 for missing. The same function bins training and new rows."""
    v = np.asarray(values, dtype=np.float32).reshape(-1)
    idx = np.searchsorted(np.asarray(edges, dtype=np.float32), v, side="right")
    return np.where(np.isnan(v), len(edges) + 1, idx)


def categorical_bins(values: np.ndarray, levels: list[str], known: set[str] | frozenset[str]) -> np.ndarray:
    """Bin index per value: i for levels[i]; then __other__ (a training level not kept), __unseen__, __missing__."""
    lookup = {lv: i for i, lv in enumerate(levels)}
    other, unseen, missing = len(levels), len(levels) + 1, len(levels) + 2
    v = np.asarray(values, dtype=object).reshape(-1)
    return np.fromiter((lookup.get(x, missing if x == "" else (other if x in known else unseen)) for x in v),
                       dtype=np.int64, count=len(v))


def bin_labels(feature: Mapping[str, Any]) -> list[str]:
    if feature["kind"] == "numeric":
        e = feature["edges"]
        if not e:
            return ["all", MISSING]
        return [f"< {e[0]:.6g}"] + [f"[{a:.6g}, {b:.6g})" for a, b in itertools.pairwise(e)] \
            + [f">= {e[-1]:.6g}", MISSING]
    return [*feature["levels"], OTHER, UNSEEN, MISSING]


def bin_feature(feature: Mapping[str, Any], values: np.ndarray) -> np.ndarray:
    """Counts per bin of `values` (graph-feed form: float32 with NaN, or strings with "")."""
    n_bins = len(bin_labels(feature))
    if feature["kind"] == "numeric":
        idx = numeric_bins(values, feature["edges"])
    else:
        idx = categorical_bins(values, feature["levels"], feature["_known"])
    return np.bincount(idx, minlength=n_bins)


def build_reference_profile(feeds: Mapping[str, np.ndarray], schema: list[dict[str, str]]) -> dict[str, Any]:
    """The profile from graph feeds (one float32 / string array per feature, as the model sees them)."""
    features: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    n_rows = 0
    for col in schema:
        v = np.asarray(feeds[col["name"]]).reshape(-1)
        n_rows = len(v)
        if col["kind"] in ("numeric", "datetime"):  # a datetime feeds epoch seconds: binned like a number
            # (float32 bins: ~2-minute resolution on current dates, plenty for deciles)
            finite = v[~np.isnan(v)].astype(np.float64)
            edges = sorted(set(np.quantile(finite, np.linspace(0, 1, N_QUANTILE_BINS + 1)[1:-1]).astype(np.float32)
                               .tolist())) if len(finite) else []
            # a bin below the smallest training value would always be empty in the reference: drop that edge
            if edges and len(finite) and edges[0] <= float(finite.min()):
                edges = edges[1:]
            feat: dict[str, Any] = {"name": col["name"], "kind": "numeric", "edges": [float(e) for e in edges]}
            if len(finite):
                feat["summary"] = {"mean": float(finite.mean()), "std": float(finite.std()),
                                   "min": float(finite.min()), "max": float(finite.max())}
        elif col["kind"] == "categorical":
            present = v[v != ""]
            if len(present):
                levels, counts = np.unique(present.astype(str), return_counts=True)
            else:
                levels, counts = np.array([], dtype=str), np.array([], dtype=np.int64)
            order = sorted(range(len(levels)), key=lambda i: (-counts[i], levels[i]))
            feat = {"name": col["name"], "kind": "categorical",
                    "levels": [str(levels[i]) for i in order[:MAX_LEVELS]],
                    "n_levels": len(levels), "other_levels": [str(levels[i]) for i in order[MAX_LEVELS:]][:5000]}
        else:
            skipped.append({"name": col["name"], "reason": f"{col['kind']} column: free text has no stable bins"})
            continue
        counts = bin_feature(prepare(dict(feat)), v)
        feat["bins"] = bin_labels(feat)
        feat["counts"] = [int(c) for c in counts]
        features.append(feat)
    return {"format": FORMAT, "rows": int(n_rows), "features": features, "not_profiled": skipped,
            "input_schema": list(schema)}


def prepare(feature: dict[str, Any]) -> dict[str, Any]:
    """Add the lookup set a categorical feature bins with (not stored)."""
    if feature["kind"] == "categorical" and "_known" not in feature:
        feature["_known"] = frozenset(feature["levels"]) | frozenset(feature.get("other_levels", []))
    return feature


def write_reference_profile(root: Path, X: Any, schema: Any) -> str | None:
    """Called by the run right after model.onnx: profile the model frame, write it, return its SHA-256.

    The profile is a monitoring aid: if it cannot be built, the run keeps its model and says why."""

    cols = schema.to_json()
    try:
        profile = build_reference_profile(feeds_from_frame(X, cols, where="the model frame"), cols)
    except Exception as e:
        logging.getLogger("automl").error("reference_profile.json not written (drift checks unavailable): %s: %s",
                                          type(e).__name__, e)
        return None
    data = (json.dumps(profile, indent=1) + "\n").encode("utf-8")
    write_bytes(RunPaths(Path(root)).reference_profile, data)
    return hashlib.sha256(data).hexdigest()


def load_reference_profile(path: Path) -> dict[str, Any]:
    profile = json.loads(Path(path).read_text(encoding="utf-8"))
    for f in profile["features"]:
        prepare(f)
    return profile
