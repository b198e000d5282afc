"""Tree-ensemble trimming (export.variants=[trim]): the shipped model with fewer trees, kept where it holds up.

A boosted model's prefix of k rounds is the model it was after k rounds (LightGBM `num_iteration`, an XGBoost
booster slice, HistGradientBoosting's first k predictors); a bagged forest's first k trees are a smaller forest
of the same kind (its average over fewer trees). The number of rounds or trees is chosen on the holdout, with the
model the holdout scored (never the refit that has seen it): the smallest prefix among a tenth, two tenths, ...
nine tenths of the full count whose holdout score is within `tol` of the full model's (in the metric's units).
The shipped model is trimmed in the same proportion, exported and gated on parity against the trimmed Python
model; the caller measures its size, latency and ONNX holdout score (automl/export/variants.py) and keeps it
only when it is smaller and the gate held.
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

from automl.errors import ParityError

FRACTIONS = tuple(i / 10 for i in range(1, 10))


def _final(pipe: Any) -> tuple[Any, Callable[[Any], Any]]:
    """(the tree ensemble at the end of a single pipeline, a function rebuilding the pipeline around a
    replacement for it); (None, ...) for anything else (an ensemble of pipelines, a wrapper it cannot see
    through)."""
    inner, wrap = pipe, (lambda p: p)
    if hasattr(pipe, "inner") and hasattr(pipe, "calibrator"):  # a probability calibrator around the pipeline
        calibrated = pipe

        def wrap(p: Any) -> Any:
            out = copy.copy(calibrated)
            out.inner = p
            return out

        inner = pipe.inner
    if not hasattr(inner, "steps"):
        return None, wrap
    est = inner.steps[-1][1]

    def rebuild(new_est: Any) -> Any:
        p = copy.copy(inner)
        p.steps = [*inner.steps[:-1], (inner.steps[-1][0], new_est)]
        return wrap(p)

    return (est if units(est) else None), rebuild


def units(est: Any) -> int:
    """Boosting rounds or bagged trees of a fitted tree ensemble; 0 when it is not one this module trims."""
    mod = type(est).__module__.split(".")[0]
    if mod == "lightgbm" and hasattr(est, "booster_"):
        return int(est.booster_.current_iteration())
    if mod == "xgboost":
        return int(est.get_booster().num_boosted_rounds())
    if hasattr(est, "_predictors") and hasattr(est, "n_iter_"):  # HistGradientBoosting
        return len(est._predictors)
    if hasattr(est, "estimators_") and type(est).__name__.startswith(("RandomForest", "ExtraTrees")):
        return len(est.estimators_)
    return 0


def prefix(est: Any, k: int) -> Any:
    """A copy of the fitted ensemble `est` keeping its first k rounds (boosting) or trees (forests)."""
    mod = type(est).__module__.split(".")[0]
    out = copy.copy(est)
    if mod == "lightgbm":
        import lightgbm

        out._Booster = lightgbm.Booster(model_str=est.booster_.model_to_string(num_iteration=k))
        out._best_iteration = -1  # no early-stopping record: predict uses every kept round
    elif mod == "xgboost":
        booster = est.get_booster()[:k]
        out._Booster = booster
        for attr in ("best_iteration", "best_score"):  # an early-stopping record would point past the prefix
            if attr in booster.attributes():
                booster.set_attr(**{attr: None})
    elif hasattr(est, "_predictors"):
        out._predictors = est._predictors[:k]  # n_iter_ is len(_predictors)
    else:
        out.estimators_ = est.estimators_[:k]
        out.n_estimators = k
    return out


def choose_rounds(held: Any, score: Callable[[Any], float], greater_is_better: bool, tol: float,
                  time_limit_s: float = float("inf")) -> dict[str, Any]:
    """The smallest prefix of the holdout-scored pipeline `held` whose holdout score (`score(pipeline)`) is
    within `tol` of the full model's: {"of", "full_score", "tried": [(k, score)], "rounds" (absent: none)}.
    Stops after `time_limit_s` (the final refit's clock is the shipped model's: a variant never costs it)."""
    est, rebuild = _final(held)
    if est is None:
        return {"why": "not a single tree-ensemble pipeline (LightGBM, XGBoost, HistGradientBoosting, forests)"}
    n = units(est)
    end = time.perf_counter() + time_limit_s
    full = score(held)
    out: dict[str, Any] = {"of": n, "full_score": full, "tried": []}
    for k in sorted({max(1, math.ceil(f * n)) for f in FRACTIONS} - {n}):
        if time.perf_counter() > end:
            out["why"] = f"out of time ({time_limit_s:.3g} s) after {len(out['tried'])} prefix(es)"
            return out
        s = score(rebuild(prefix(est, k)))
        out["tried"].append([k, s])
        if (full - s if greater_is_better else s - full) <= tol:
            out.update(rounds=k, score=s)
            return out
    out["why"] = f"no prefix of fewer than {n} rounds/trees scores within {tol:g} of the full model's holdout score"
    return out


def trim(held: Any, shipped: Any, score: Callable[[Any], float], greater_is_better: bool, tol: float,
         export: Callable[[Any], Any], parity: Callable[[Any, Any], dict[str, Any]],
         time_limit_s: float = float("inf")) -> dict[str, Any]:
    """The trim variant of the shipped pipeline: rounds chosen on `held` (the holdout-scored pipeline), the same
    share of `shipped`'s rounds kept, exported (`export(pipeline) -> ModelProto`) and gated
    (`parity(model, pipeline)`, raising ParityError). `model` holds the graph's bytes when it passed."""
    choice = choose_rounds(held, score, greater_is_better, tol, time_limit_s)
    entry: dict[str, Any] = {"kind": "trim", "score_tol": tol,
                             **{k: v for k, v in choice.items() if k in ("of", "full_score", "tried", "why")}}
    if "rounds" not in choice:
        return entry
    est, rebuild = _final(shipped)
    if est is None:
        return {**entry, "why": "the shipped pipeline is not a single tree ensemble"}
    n = units(est)
    k = max(1, min(n, round(choice["rounds"] * n / choice["of"])))
    entry.update(rounds=k, shipped_rounds=n, holdout_score_python=choice["score"])
    if k >= n:
        return {**entry, "why": "the kept share rounds to every tree of the shipped model"}
    small = rebuild(prefix(est, k))
    model = export(small)
    try:
        entry["parity"] = parity(model, small)
    except ParityError as e:
        return {**entry, "why": f"the trimmed graph failed the parity gate against the trimmed model: {e}"}
    entry["model"] = model.SerializeToString()
    return entry
