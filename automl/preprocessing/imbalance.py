"""Imbalanced classification: resampling and class weights, at fit time only.

`BalancedClassifier` is the last step of a trial's pipeline (ColumnTransformer -> float32 -> here).
Its `fit` resamples the *encoded* training matrix it receives (so only the training part of a CV
fold, or the final refit's rows, is ever resampled: the preprocessing before it is fitted on real
rows only), optionally weights the classes, and fits the inner estimator. Prediction is the inner
estimator's, so the exported graph is the inference-time pipeline with the inner estimator in its
place (automl/export/onnx.py), and parity is that of the family itself.

Categorical columns. The pipeline encodes categoricals before this step, so plain SMOTE would
interpolate one-hot indicators (0.3 "red" + 0.7 "blue") and target/ordinal codes into values no
real row has. Where the encoded matrix holds categorical columns, each one-hot block is folded back
into one code column and SMOTE-NC (Chawla et al. 2002) gives each synthetic row the most frequent
level among its neighbours, then the block is unfolded again: synthetic rows are valid one-hot
rows. Ordinal codes, target-encoded values and missing-value indicators are categorical columns of
SMOTE-NC as they are. ADASYN has no categorical variant; its synthetic rows get each categorical
column from their nearest real minority row instead. Tomek links and ENN cleaning measure distances
on the encoded matrix after over-sampling.

Balanced bagging (EasyEnsemble, Liu, Wu & Zhou 2009). One under-sampled fit discards most majority rows;
`balanced_bagging` fits `n_bags` copies of the estimator, each on every minority row plus its own random
draw of the majority rows, and averages their probabilities. Each fit is small (cheap on rare positives),
together they see most majority rows, and the average has less variance than one under-sampled model:
what ranking metrics on a rare class (average precision, ROC AUC) reward. The graph holds every bag
behind the shared preprocessing, averaged (automl/export/onnx.py).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted

from automl.evaluation.metrics import labels_from_proba

SAMPLERS = ("none", "random_over", "random_under", "balanced_bagging", "smote", "adasyn", "smote_tomek", "smote_enn")
NEIGHBOUR_SAMPLERS = ("smote", "adasyn", "smote_tomek", "smote_enn")  # need complete rows (no NaN)


def supports_weights(estimator: Any) -> str:
    """How the estimator takes class weights: its own `class_weight` parameter, `sample_weight` in
    fit, or not at all ("")."""
    import inspect

    if "class_weight" in estimator.get_params():
        return "class_weight"
    if "sample_weight" in inspect.signature(estimator.fit).parameters:
        return "sample_weight"
    return ""


def balanced_weights(y: np.ndarray) -> np.ndarray:
    """n / (C * n_c) per row, as scikit-learn's class_weight='balanced'."""
    classes, inv, counts = np.unique(y, return_inverse=True, return_counts=True)
    return (len(y) / (len(classes) * counts))[inv]


def _targets(y: np.ndarray, ratio: float, over: bool) -> dict[Any, int]:
    """Rows per class after resampling: every class up to `ratio` x the largest (over-sampling), or
    every class down to the smallest / `ratio` (under-sampling); classes never move the other way."""
    classes, counts = np.unique(y, return_counts=True)
    if over:
        want = int(np.ceil(ratio * counts.max()))
        return {c: max(int(n), want) for c, n in zip(classes, counts, strict=True) if n < want}
    want = max(int(counts.min() / ratio), int(counts.min()))
    return {c: min(int(n), want) for c, n in zip(classes, counts, strict=True) if n > want}


def _layout(pre: Any, width: int) -> tuple[list[slice], list[int]]:
    """Categorical structure of the fitted ColumnTransformer's output: one-hot blocks, and single
    categorical columns (ordinal/target codes, missing indicators)."""
    blocks: list[slice] = []
    singles: list[int] = []
    if pre is None or not hasattr(pre, "output_indices_"):
        return blocks, singles
    for name, trans, _cols in pre.transformers_:
        sl = pre.output_indices_.get(name, slice(0, 0))
        if sl.stop <= sl.start or trans == "drop":
            continue
        if name == "nan":
            singles.extend(range(sl.start, sl.stop))
        elif name == "cat":
            enc = trans.steps[-1][1] if hasattr(trans, "steps") else trans
            if hasattr(enc, "categories_") and type(enc).__name__ == "OneHotEncoder":
                start = sl.start
                for cats in enc.categories_:
                    blocks.append(slice(start, start + len(cats)))
                    start += len(cats)
            else:
                singles.extend(range(sl.start, sl.stop))
    return [b for b in blocks if b.stop <= width], [i for i in singles if i < width]


def _fold(X: np.ndarray, blocks: list[slice], singles: list[int]) -> tuple[np.ndarray, list[int]]:
    """Each one-hot block -> one code column (appended after the other columns); categorical indices."""
    in_block = np.zeros(X.shape[1], dtype=bool)
    for b in blocks:
        in_block[b] = True
    keep = np.flatnonzero(~in_block)
    codes = [np.argmax(X[:, b], axis=1).astype(np.float64) for b in blocks]
    Z = np.column_stack([X[:, keep].astype(np.float64), *codes]) if codes else X[:, keep].astype(np.float64)
    pos = {j: i for i, j in enumerate(keep.tolist())}
    cat = [pos[j] for j in singles] + list(range(len(keep), len(keep) + len(blocks)))
    return Z, cat


def _unfold(Z: np.ndarray, width: int, blocks: list[slice]) -> np.ndarray:
    in_block = np.zeros(width, dtype=bool)
    for b in blocks:
        in_block[b] = True
    keep = np.flatnonzero(~in_block)
    X = np.zeros((len(Z), width), dtype=np.float64)
    X[:, keep] = Z[:, : len(keep)]
    for i, b in enumerate(blocks):
        code = Z[:, len(keep) + i].astype(np.int64)
        X[np.arange(len(Z)), b.start + code] = 1.0
    return X


class BalancedClassifier(ClassifierMixin, BaseEstimator):
    """Fit-time resampling and/or class weighting around a classifier; prediction is the inner one's.

    sampler: one of SAMPLERS; ratio: the share the smaller classes reach relative to the largest
    (over-sampling) or the largest keeps relative to the smallest (under-sampling, balanced bagging),
    1.0 = balanced; n_bags: fits averaged by balanced bagging; class_weight: "balanced" or None;
    preprocessor: the pipeline's fitted ColumnTransformer, read at fit time for the categorical layout
    of the matrix this step receives.
    """

    def __init__(self, estimator: Any, sampler: str = "none", ratio: float = 1.0, k_neighbors: int = 5,
                 class_weight: str | None = None, random_state: int = 0, preprocessor: Any = None,
                 n_bags: int = 10):
        self.estimator = estimator
        self.sampler = sampler
        self.ratio = ratio
        self.k_neighbors = k_neighbors
        self.class_weight = class_weight
        self.random_state = random_state
        self.preprocessor = preprocessor
        self.n_bags = n_bags

    def _resample(self, X: np.ndarray, y: np.ndarray, bag: int = 0) -> tuple[np.ndarray, np.ndarray]:
        from imblearn.over_sampling import ADASYN, SMOTE, SMOTEN, SMOTENC, RandomOverSampler
        from imblearn.under_sampling import EditedNearestNeighbours, RandomUnderSampler, TomekLinks

        name, seed = self.sampler, self.random_state + bag  # each bag of balanced bagging draws its own rows
        if name == "none":
            return X, y
        over = name not in ("random_under", "balanced_bagging")
        targets = _targets(y, float(self.ratio), over)
        if not targets:
            return X, y
        if name == "random_over":
            return RandomOverSampler(sampling_strategy=targets, random_state=seed).fit_resample(X, y)
        if name in ("random_under", "balanced_bagging"):
            return RandomUnderSampler(sampling_strategy=targets, random_state=seed).fit_resample(X, y)
        counts = np.unique(y, return_counts=True)[1]
        k = min(int(self.k_neighbors), int(counts.min()) - 1)
        if k < 1:  # a class with one row in this fold has no neighbour to interpolate towards
            self.sampler_used_ = "random_over"
            return RandomOverSampler(sampling_strategy=targets, random_state=seed).fit_resample(X, y)
        blocks, singles = _layout(self.preprocessor, X.shape[1])
        Z, cat = _fold(X, blocks, singles)
        if name == "adasyn":
            try:
                Zr, yr = ADASYN(sampling_strategy=targets, n_neighbors=k, random_state=seed).fit_resample(Z, y)
            except (RuntimeError, ValueError):  # no minority row has majority neighbours: nothing to adapt to
                self.sampler_used_ = "smote"
                Zr, yr = SMOTE(sampling_strategy=targets, k_neighbors=k, random_state=seed).fit_resample(Z, y)
            if cat:  # categorical columns of synthetic rows from their nearest real minority row
                Zr = _snap_categorical(Z, y, Zr, yr, cat)
        elif cat and len(cat) == Z.shape[1]:
            Zr, yr = SMOTEN(sampling_strategy=targets, k_neighbors=k, random_state=seed).fit_resample(Z, y)
        elif cat:
            Zr, yr = SMOTENC(categorical_features=cat, sampling_strategy=targets, k_neighbors=k,
                             random_state=seed).fit_resample(Z, y)
        else:
            Zr, yr = SMOTE(sampling_strategy=targets, k_neighbors=k, random_state=seed).fit_resample(Z, y)
        Xr = _unfold(Zr, X.shape[1], blocks) if blocks else Zr
        if name == "smote_tomek":
            Xr, yr = TomekLinks().fit_resample(Xr, yr)
        elif name == "smote_enn":
            Xr, yr = EditedNearestNeighbours().fit_resample(Xr, yr)
        return Xr, yr

    def _fit_one(self, X: np.ndarray, y: np.ndarray, bag: int = 0) -> tuple[Any, int]:
        Xr, yr = self._resample(X, y, bag)
        Xr = np.asarray(Xr, dtype=np.float32)  # the precision the graph feeds the estimator
        est = clone(self.estimator)
        seed = est.get_params().get("random_state")
        if bag and isinstance(seed, (int, np.integer)):  # bags also differ in their randomised fits
            est.set_params(random_state=int(seed) + bag)
        kw: dict[str, Any] = {}
        if self.class_weight == "balanced":
            how = supports_weights(est)
            if how == "class_weight":
                est.set_params(class_weight="balanced")
            elif how == "sample_weight":
                kw["sample_weight"] = balanced_weights(yr)
            else:
                raise ValueError(f"{type(est).__name__} takes neither class_weight nor sample_weight")
        return est.fit(Xr, yr, **kw), len(yr)

    def fit(self, X: Any, y: Any) -> BalancedClassifier:
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y)
        self.sampler_used_ = self.sampler
        if self.sampler == "balanced_bagging":
            fits = [self._fit_one(X, y, b) for b in range(max(int(self.n_bags), 1))]
            self.estimators_ = [e for e, _ in fits]
            self.n_resampled_ = int(sum(n for _, n in fits))
        else:
            est, n = self._fit_one(X, y)
            self.estimators_ = [est]
            self.n_resampled_ = int(n)
        self.estimator_ = self.estimators_[0]
        self.classes_ = self.estimator_.classes_
        for e in self.estimators_[1:]:  # under-sampling keeps every class, so every bag knows them all
            if not np.array_equal(e.classes_, self.classes_):
                raise ValueError("a bag of balanced bagging lacks a class")
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        if len(self.estimators_) == 1:
            return self.estimator_.predict_proba(X)
        return np.mean([np.asarray(e.predict_proba(X), dtype=np.float64) for e in self.estimators_], axis=0)

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        if len(self.estimators_) == 1:
            return self.estimator_.predict(X)
        return self.classes_[labels_from_proba(self.predict_proba(X))]


def _snap_categorical(Z: np.ndarray, y: np.ndarray, Zr: np.ndarray, yr: np.ndarray, cat: list[int]) -> np.ndarray:
    """Synthetic rows (those past the real ones) take their categorical values from the nearest real
    row of their class."""
    from sklearn.neighbors import NearestNeighbors

    n = len(Z)
    Zr = Zr.copy()
    cols = np.asarray(cat, dtype=np.intp)
    for c in np.unique(yr[n:]):
        real = Z[y == c]
        syn = np.flatnonzero(yr[n:] == c) + n
        idx = NearestNeighbors(n_neighbors=1).fit(real).kneighbors(Zr[syn], return_distance=False)[:, 0]
        Zr[np.ix_(syn, cols)] = real[np.ix_(idx, cols)]
    return Zr


def wrap(estimator: Any, choices: Mapping[str, Any], seed: int, preprocessor: Any) -> Any:
    """The estimator, wrapped when the trial chose a sampler or class weights."""
    sampler = choices.get("sampler", choices.get("sampler_native_nan", "none"))
    weight = choices.get("class_weight", "none")
    if sampler == "none" and weight == "none":
        return estimator
    return BalancedClassifier(estimator, sampler=sampler, ratio=float(choices.get("ratio", 1.0)),
                              k_neighbors=int(choices.get("k_neighbors", 5)),
                              class_weight="balanced" if weight == "balanced" else None,
                              random_state=seed, preprocessor=preprocessor, n_bags=int(choices.get("n_bags", 10)))


def inference_estimators(estimator: Any) -> list[Any]:
    """What the graph holds in place of the last step: the inner fitted estimator of a wrapper, or each
    bag of balanced bagging (the graph averages their probabilities with equal weights)."""
    return list(estimator.estimators_) if isinstance(estimator, BalancedClassifier) else [estimator]


_WEIGHTS: dict[tuple[str, str], bool] = {}


AUTO_RATIO = 3.0  # majority / minority from which search.imbalance=auto searches resampling and weights


def search_imbalance(setting: str, task: str, metric: Any, y: np.ndarray) -> bool:
    """Whether the search offers samplers and class weights (search.imbalance). `auto`: for label
    metrics, whose decision rule should favour a small class, and for ranking metrics once classes are
    3:1 or worse; not for log_loss, which scores the class priors that resampling and weights shift."""
    value = str(setting).lower()
    if task not in ("binary", "multiclass") or value == "false":
        return False
    if value == "true":
        return True
    if metric.counts is not None:
        return True
    if metric.name == "log_loss":
        return False
    _, counts = np.unique(np.asarray(y), return_counts=True)
    return bool(len(counts) > 1 and counts.max() / counts.min() >= AUTO_RATIO)


def context(spec: Any, task: str) -> dict[str, Any]:
    """`when:` keys for search_spaces/imbalance.yaml: whether the family can take class weights."""
    if task not in ("binary", "multiclass") or not getattr(spec, "imbalance", True):
        return {"resampling": False, "class_weights": False}
    declared = getattr(spec, "class_weights", None)
    if declared is not None:
        return {"resampling": True, "class_weights": bool(declared)}
    if (spec.key, task) not in _WEIGHTS:
        try:
            _WEIGHTS[spec.key, task] = bool(supports_weights(spec.build({}, task=task, seed=0, n_jobs=1)))
        except Exception:  # a family that cannot be built bare: no weights; its trials report their own errors
            _WEIGHTS[spec.key, task] = False
    return {"resampling": True, "class_weights": _WEIGHTS[spec.key, task]}
