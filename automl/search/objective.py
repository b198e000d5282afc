"""What one trial is: sample a pipeline (define-by-run), then score it by cross-validation.

Sampling happens in the driver (it owns the Optuna trial); the cross-validation runs in the
supervised child, with every preprocessing step fitted inside each fold.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from automl.data.profile import IMBALANCE_RATIO
from automl.data.roles import Schema
from automl.data.split import RANDOM, Structure, scored_rows
from automl.estimators import REGISTRY
from automl.evaluation import threshold as thresholds
from automl.evaluation.metrics import Metric
from automl.export.measure import quick_p50
from automl.features.build import data_context
from automl.memory import process_mb
from automl.preprocessing.imbalance import context as imbalance_context
from automl.preprocessing.imbalance import wrap
from automl.preprocessing.pipeline import build_constant_pipeline, build_pipeline, set_groups
from automl.search import space as sp
from automl.search.enumerate_ahead import synthesis_ready
from automl.search.rung import RUNG_STEP, rung_sample
from automl.search.supervisor import Pruned


@dataclass(frozen=True)
class Candidate:
    """A sampled pipeline: family, its parameters and the preprocessing choices."""
    family: str
    params: dict[str, Any]
    pre: dict[str, Any]
    imb: dict[str, Any] = field(default_factory=dict)  # search_spaces/imbalance.yaml choices

    def summary(self) -> str:
        keys = ("outliers", "skew_log", "native_nan", "num_impute", "missing_indicator", "scaler", "cat_encoding",
                "rare_min_frequency", "datetime_parts", "dfs", "dfs_primitives", "dfs_max_features", "poly",
                "poly_top_k", "pca_components", "text_vectorizer", "text_svd", "text_stats", "select")
        parts = []
        for k, v in self.imb.items():  # first: the leaderboard's column is cut at 120 characters
            if v != "none" and (k not in ("ratio", "k_neighbors") or self.imb.get("sampler", self.imb.get(
                    "sampler_native_nan", "none")) != "none"):
                parts.append(f"{k.replace('_native_nan', '')}={v:.3g}" if isinstance(v, float) else
                             f"{k.replace('_native_nan', '')}={v}")
        for k in keys:
            if k in self.pre:
                v = self.pre[k]
                parts.append(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}")
        return " ".join(parts)


def candidate_from(params: dict[str, Any], best_rounds: int | None = None) -> Candidate:
    """A trial's pipeline from its flat Optuna parameters ("family", "<family>.x", "pre.x", "imb.x").
    `best_rounds`: the boosting rounds early stopping kept, which replace the sampled round budget."""
    fam = params["family"]
    own = {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith(fam + ".")}
    rounds_param = REGISTRY.get(fam).rounds_param if fam in REGISTRY else ""
    if best_rounds and rounds_param in own:
        own[rounds_param] = int(best_rounds)
    if fam in REGISTRY and not REGISTRY.get(fam).uses_features:  # a constant: its drawn preprocessing is unused
        return Candidate(fam, own, {}, {})
    return Candidate(fam, own,
                     {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("pre.")},
                     {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("imb.")})


@dataclass
class SearchData:
    """Everything a trial needs; shared with forked children copy-on-write."""
    X: pd.DataFrame  # model frame of the search rows (holdout excluded)
    y: np.ndarray  # int codes (classification) or float (regression)
    folds: list[tuple[np.ndarray, np.ndarray]]
    schema: Schema
    missing_numeric: list[str]
    task: str
    metric: Metric
    n_classes: int
    seed: int
    families: list[str]
    space_dir: str = ""
    spaces: dict[str, list[sp.ParamSpec]] = field(default_factory=dict)
    n_jobs: int = 2
    imbalance: bool = True  # search samplers and class weights (classification; search.imbalance)
    tune_threshold: bool = True  # binary label metrics: decision threshold on OOF (task.tune_threshold)
    fixed: dict[str, Any] = field(default_factory=dict)  # search.fixed; after init "prefix.param" -> value
    structure: Structure = RANDOM  # groups / time order of the rows (data.group_column, data.time_column)
    scored: np.ndarray = field(init=False)  # rows some fold validates (forward chaining skips the first block)
    high_cardinality: bool = field(init=False, default=False)  # collapses_under_onehot, set from X
    rung_rows: int = 0  # one inner split: rows of a trial's cheap first fit (search/rung.py), 0 for none
    # constraints.max_latency_ms / max_model_mb on: the trials likely to ship are exported, so the sampler's
    # constraint values are their own graphs' (search/deploy_cost.py), not their family's median; and under a
    # memory limit the final refit is held to, so that their measured peaks include the export
    measure_graphs: bool = False

    @property
    def oof_y(self) -> np.ndarray:
        """The target of the rows out-of-fold predictions score (OOF files hold every row)."""
        return self.y[self.scored]

    def __post_init__(self) -> None:
        self.scored = scored_rows(self.folds, len(self.y))
        self.high_cardinality = collapses_under_onehot(self.X, self.schema.names("categorical"))
        for key in self.families:
            self.spaces[key] = sp.load_space(key, REGISTRY.get(key).space_dir or self.space_dir)
        self.spaces["preprocessing"] = sp.load_space("preprocessing", self.space_dir)
        if self.imbalance and self.task != "regression":
            from pathlib import Path

            own = self.space_dir and (Path(self.space_dir) / "imbalance.yaml").exists()
            self.spaces["imbalance"] = sp.load_space("imbalance", self.space_dir if own else "")
        self.fixed = sp.pin(self.spaces, self.fixed)


def context_for(data: SearchData, family: str) -> dict[str, Any]:
    spec = REGISTRY.get(family)
    return {"task": data.task, **spec.tags, "native_nan": False, **imbalance_context(spec, data.task),
            **data_context(data.schema), "high_cardinality": data.high_cardinality}


RARE_LEVEL = 0.01  # the default rare-level threshold of one-hot encoding (search_spaces/preprocessing.yaml)
COLLAPSING_SHARE = 0.25


def collapses_under_onehot(X: pd.DataFrame, categorical: list[str]) -> bool:
    """Whether some categorical column keeps a quarter or more of its rows in levels rarer than 1%: one-hot
    encoding with rare levels grouped at 1% (the default) folds them into one column and throws the
    column's signal away (an ID-like column of 3,000 levels did exactly that). Such data get target
    encoding (ordinal codes for multiclass) without rare grouping as the default of every family."""
    for col in categorical:
        freq = X[col].astype("string").fillna("").value_counts(normalize=True)
        if float(freq[freq < RARE_LEVEL].sum()) >= COLLAPSING_SHARE:
            return True
    return False


def sample(trial: Any, data: SearchData) -> Candidate:
    family = trial.suggest_categorical("family", data.families)
    ctx = context_for(data, family)
    params = sp.suggest(trial, data.spaces[family], family, dict(ctx))
    pre = sp.suggest(trial, data.spaces["preprocessing"], "pre", ctx)
    imb = sp.suggest(trial, data.spaces["imbalance"], "imb", ctx) if "imbalance" in data.spaces else {}
    if not REGISTRY.get(family).uses_features:
        # a constant uses no preprocessing (build), but its trial still draws it: multivariate TPE (group=True)
        # models `family` jointly with the preprocessing only while every trial carries both, and the baseline
        # runs in every study (without them there: 9 better, 19 worse than the engine before, one sitting)
        return Candidate(family, params, {}, {})
    synthesis_ready(pre, data.spaces["preprocessing"], data.schema)
    return Candidate(family, params, pre, imb)


def default_params(data: SearchData, family: str, overrides: dict[str, Any] | None = None,
                   imbalance: dict[str, Any] | None = None) -> dict[str, Any]:
    """Optuna params of a family's default configuration, or of a portfolio entry or an imbalance
    variant (warm start)."""
    ctx = context_for(data, family)
    out = {"family": family}
    out.update(sp.defaults(data.spaces[family], family, dict(ctx), overrides))
    out.update(sp.defaults(data.spaces["preprocessing"], "pre", ctx))
    if "imbalance" in data.spaces:
        out.update(sp.defaults(data.spaces["imbalance"], "imb", ctx, imbalance))
    return out


# Imbalance variants of a family's default configuration, queued in the warm start: class weights
# (no extra cost), then balanced bagging (each fit sees a small under-sample). The costly
# neighbour-based samplers are left to the sampler.
IMBALANCE_VARIANTS: tuple[dict[str, Any], ...] = (
    {"class_weight": "balanced"},
    {"sampler": "balanced_bagging", "sampler_native_nan": "balanced_bagging"},
)


# Fewest validation rows of the smallest class in every fold for one fold's score to tell trials apart.
# Below it (e.g. 46 positives in 5 folds: 9 per fold) a fold's average precision or F1 swings by more than
# the gaps between good configurations, and the median pruner would stop strong trials by chance.
MIN_PRUNE_MINORITY = 20


def fold_scores_comparable(data: SearchData) -> bool:
    """Whether the search may prune a trial on its first folds' scores (regression: always). One inner
    split: never, its one score is the trial's result."""
    if len(data.folds) < 2:
        return False
    if data.task == "regression":
        return True
    y = np.asarray(data.y, dtype=np.int64)
    return all(np.bincount(y[va], minlength=data.n_classes).min() >= MIN_PRUNE_MINORITY for _, va in data.folds)


def imbalanced(data: SearchData) -> bool:
    """The target is imbalanced as the profile flags it (majority / minority >= 10)."""
    if data.task == "regression" or not len(data.y):
        return False
    counts = np.bincount(np.asarray(data.y, dtype=np.int64), minlength=data.n_classes)
    counts = counts[counts > 0]
    return bool(len(counts) > 1 and counts.max() / counts.min() >= IMBALANCE_RATIO)


def imbalance_variants(data: SearchData, family: str) -> list[dict[str, Any]]:
    """Optuna params of the family's default configuration with each IMBALANCE_VARIANTS entry applied,
    where the family and the search space offer it (a custom imbalance.yaml may not); none that
    equals the default configuration itself."""
    if "imbalance" not in data.spaces:
        return []
    base = default_params(data, family)
    choices: dict[str, set[Any]] = {}
    for p in data.spaces["imbalance"]:
        if p.type == "categorical":
            choices.setdefault(f"imb.{p.name}", set()).update(p.choices)
    out: list[dict[str, Any]] = []
    for variant in IMBALANCE_VARIANTS:
        params = default_params(data, family, imbalance=variant)
        if any(k in choices and v not in choices[k] for k, v in params.items()):
            continue  # a value this search space does not offer
        if params != base and params not in out:
            out.append(params)
    return out


def portfolio(data: SearchData, family: str) -> list[dict[str, Any]]:
    return sp.load_portfolio(family, REGISTRY.get(family).space_dir or data.space_dir)


def build(data: SearchData, cand: Candidate, extra: dict[str, Any] | None = None,
          groups: np.ndarray | None = None) -> Any:
    """`groups`: one per row the pipeline will be fitted on, for target encoding's cross-fitting."""
    spec = REGISTRY.get(cand.family)
    est = spec.build({**cand.params, **(extra or {})}, task=data.task, seed=data.seed, n_jobs=data.n_jobs)
    if not spec.uses_features:
        return build_constant_pipeline(est, data.schema)
    pipe = set_groups(build_pipeline(est, cand.pre, data.schema, data.missing_numeric, data.task), groups, data.seed)
    if cand.imb:  # fit-time resampling / class weights around the estimator (the graph holds the inner one)
        pipe.steps[-1] = ("est", wrap(est, cand.imb, data.seed, pipe.named_steps["pre"]))
    return pipe


def predict(pipe: Any, X: pd.DataFrame, task: str, n_classes: int) -> np.ndarray:
    """Probabilities [N, C] over all classes (a fold may lack one), or predictions [N]."""
    if task == "regression":
        return np.asarray(pipe.predict(X), dtype=np.float64).reshape(-1)
    proba = np.asarray(pipe.predict_proba(X), dtype=np.float64)
    classes = np.asarray(pipe.classes_)
    if len(classes) == n_classes:
        return proba
    full = np.zeros((len(X), n_classes))
    full[:, classes.astype(int)] = proba
    return full


def cross_validate(conn: Any, data: SearchData, cand: Candidate) -> dict[str, Any]:
    """Runs in the child: fit and score each fold, report it, stop if the driver says prune."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=data.n_jobs):  # OpenMP/BLAS threads: cores / workers
        return _cross_validate(conn, data, cand)


def _cross_validate(conn: Any, data: SearchData, cand: Candidate) -> dict[str, Any]:
    tuned = thresholds.applies(data.metric, data.task, data.tune_threshold)
    n = len(data.y)
    oof = np.zeros((n, data.n_classes)) if data.task != "regression" else np.zeros(n)
    scores, fit_s, pred_s, pred_rows = [], 0.0, 0.0, 0
    first_step = 0
    if data.rung_rows and conn is not None:
        rung(conn, data, cand)
        first_step = RUNG_STEP + 1
    for i, (tr, va) in enumerate(data.folds):
        pipe = build(data, cand, groups=None if data.structure.groups is None else data.structure.groups[tr])
        t = time.perf_counter()
        rounds = fit(pipe, data, cand, tr, va)
        fit_s += time.perf_counter() - t
        t = time.perf_counter()
        pred = predict(pipe, data.X.iloc[va], data.task, data.n_classes)
        pred_s += time.perf_counter() - t
        pred_rows += len(va)
        oof[va] = pred
        seen = np.concatenate([v for _, v in data.folds[: i + 1]])
        # threshold metrics: scored at the threshold chosen on the out-of-fold rows so far
        t_i = thresholds.tune(data.metric, data.y[seen], oof[seen, 1])[0] if tuned else None
        score = data.metric(data.y[va], pred, data.n_classes, t_i)
        if not np.isfinite(score):
            raise ValueError(f"fold {i} scored {score}")
        scores.append(score)
        if conn is not None:
            conn.send(("fold", first_step + i, float(score)))
            if conn.recv() == "prune":
                raise Pruned()
    t_final, mean = None, float(np.mean(scores))
    if tuned:  # one threshold on all out-of-fold rows; the trial's score is the metric there
        t_final, mean = thresholds.tune(data.metric, data.oof_y, oof[data.scored, 1])
        scores = [data.metric(data.y[va], oof[va], data.n_classes, t_final) for _, va in data.folds]
    # the driver says whether this trial could be shipped (an ensemble member or better): exporting every
    # trial cost a third of a tree ensemble's trial time (benchmarks/NOTES.md), and the final stage's parity
    # gate is the one that decides what ships
    wanted = True
    if conn is not None:
        conn.send(("export?", len(scores), mean))
        wanted = conn.recv() != "skip"
    export = (export_check(data, pipe, data.X.iloc[va[:PARITY_ROWS]], t_final) if wanted
              else {"export_s": None, "onnx_bytes": None, "stack_mb": None})
    return {
        "fold_scores": scores, "mean": mean, "std": float(np.std(scores)), "threshold": t_final,
        "fit_s": fit_s, "fold_fit_s": fit_s / len(scores),
        "predict_ms_per_row": 1000 * pred_s / max(pred_rows, 1), "oof": oof.astype(np.float32), **export,
        "best_rounds": rounds, "trained_rounds": trained_rounds(cand, rounds),
    }


def trained_rounds(cand: Candidate, kept: int | None) -> int | None:
    """The rounds an early-stopped fit boosted: the kept ones plus the patience that confirmed them, at most
    the round budget. The refit boosts only the kept ones (search/budget.py prices it so)."""
    if kept is None:
        return None
    budget = int(cand.params[REGISTRY.get(cand.family).rounds_param])
    return min(budget, kept + patience(budget))


def rung(conn: Any, data: SearchData, cand: Candidate) -> None:
    """Fit on the rung's rows, score on the whole validation split, and stop if the driver says prune."""
    (tr, va), = data.folds
    sub = rung_sample(tr, data.rung_rows, data.seed)
    pipe = build(data, cand, groups=None if data.structure.groups is None else data.structure.groups[sub])
    fit(pipe, data, cand, sub, va)
    pred = predict(pipe, data.X.iloc[va], data.task, data.n_classes)
    if thresholds.applies(data.metric, data.task, data.tune_threshold):
        score = thresholds.tune(data.metric, data.y[va], pred[:, 1])[1]
    else:
        score = data.metric(data.y[va], pred, data.n_classes, None)
    if not np.isfinite(score):
        raise ValueError(f"the rung fit scored {score}")
    conn.send(("rung", RUNG_STEP, float(score)))
    if conn.recv() == "prune":
        raise Pruned()


def patience(rounds: int) -> int:
    """Boosting rounds without improvement before early stopping: a tenth of the round budget, at least 20
    (a short patience stops high learning rates in time, a long one lets low rates pass a plateau)."""
    return max(20, rounds // 10)


def fit(pipe: Any, data: SearchData, cand: Candidate, tr: np.ndarray, va: np.ndarray) -> int | None:
    """Fit a fold's pipeline. On one inner split a boosting family stops early on the validation rows (after
    the preprocessing, fitted on the training rows only) and the rounds it kept are returned: the final
    stage refits with that many. AutoGluon's medium preset fits its boosters this way."""
    spec = REGISTRY.get(cand.family)
    est = pipe.steps[-1][1]
    early = len(data.folds) == 1 and spec.fit_early is not None and spec.rounds_param in cand.params
    if not early or type(est).__module__.split(".")[0] not in ("lightgbm", "xgboost", "catboost"):
        pipe.fit(data.X.iloc[tr], data.y[tr])  # resampling wrappers and other families: a plain fit
        return None
    assert spec.fit_early is not None
    pre = pipe[:-1]
    Xt = pre.fit_transform(data.X.iloc[tr], data.y[tr])
    return spec.fit_early(est, Xt, data.y[tr], pre.transform(data.X.iloc[va]), data.y[va],
                          patience(int(cand.params[spec.rounds_param])))


PARITY_ROWS = 200


def export_check(data: SearchData, pipe: Any, rows: pd.DataFrame, threshold: float | None = None) -> dict[str, Any]:
    """Export the last fold's pipeline and check parity on a few rows: a trial that cannot ship fails
    now, and the export time it reports lets the scheduler keep enough time for the final export.
    `stack_mb`: what loading the export stack (onnx, skl2onnx, the converters) added to this process: ~0 in a
    trial forked from a driver that holds it (where trials export: stages/prepare.py load_libraries); a
    joining worker's trial loads it here. A refit prices it once, not scaled by rows (automl/memory.py
    members_memory)."""
    stack_mb = process_mb()
    from automl.export.onnx import check_parity, export_onnx, load_converters

    load_converters()
    stack_mb = process_mb() - stack_mb
    t = time.perf_counter()
    classes = list(range(data.n_classes)) if data.task != "regression" else None
    model = export_onnx(pipe, data.schema, data.task, classes, {}, threshold=threshold)
    export_s = time.perf_counter() - t
    graph = model.SerializeToString()
    del model  # not held while onnxruntime builds its own copy: a large tree ensemble's is ~50-100 MB
    check_parity(graph, pipe, rows, data.schema, data.task, 1e-5, data.seed, threshold=threshold,
                 labels=None if classes is None else np.asarray(classes))
    return {"export_s": export_s, "stack_mb": stack_mb,
            "onnx_bytes": len(graph),  # size and latency: constraints.* estimates
            "onnx_ms_p50": quick_p50(graph, rows, data.schema.to_json())}
