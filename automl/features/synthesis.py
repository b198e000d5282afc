"""Single-table feature synthesis: featuretools enumerates, the engine computes (in Python and in ONNX).

featuretools deep feature synthesis (one EntitySet of the training fold, transform primitives,
max_depth 1, `features_only=True`) decides WHICH features exist; `DFSFeatures` then keeps the most
relevant ones (scored on the training fold only) and computes them with plain float ops that the
custom converter in automl/export/feature_converters.py repeats op for op inside the graph, so a
user still sends raw columns. featuretools is never in the inference path.

Semantics (each checked against featuretools' own values in tests/unit/test_synthesis.py):
- numeric: `a + b`, `a - b`, `a * b`, `a / b` in float32; a zero denominator gives missing (NaN)
  where featuretools gives +/-inf, and any non-finite result is missing, so imputers downstream work.
- datetime (input: epoch seconds, float64, UTC): year, month, day, weekday (Monday = 0), hour,
  minute, day_of_year, with integer civil-calendar maths (Hinnant's days-from-civil).
- text: NUM_WORDS (chunks between space/tab/newline holding a non-punctuation character, as
  featuretools counts) and NUM_CHARACTERS (code points); the model frame's "" (missing) counts 0.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

NUMERIC_PRIMITIVES = ("add_numeric", "subtract_numeric", "multiply_numeric", "divide_numeric")
DATETIME_PRIMITIVES = ("year", "month", "day", "weekday", "hour", "minute", "day_of_year")
DATETIME_BASIC = ("year", "month", "weekday", "hour")
TEXT_PRIMITIVES = ("num_words", "num_characters")
_OP = {"add_numeric": "+", "subtract_numeric": "-", "multiply_numeric": "*", "divide_numeric": "/"}
_DEF = {"add_numeric": "sum", "subtract_numeric": "difference", "multiply_numeric": "product",
        "divide_numeric": "ratio"}
PRIMITIVES = {"numeric": NUMERIC_PRIMITIVES, "datetime": DATETIME_PRIMITIVES, "text": TEXT_PRIMITIVES}


# --- the relevance score used to bound what is kept (inside the training fold only) ---------------
def relevance(X: np.ndarray, y: np.ndarray, task: str) -> np.ndarray:
    """|Pearson r| of each column with the target (classification: the best one-vs-rest class
    indicator), over the rows where the column is present; constant or empty columns score 0."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if task == "regression":
        targets = [y.astype(np.float64)]
    else:
        classes = np.unique(y)
        targets = [(y == c).astype(np.float64) for c in (classes[1:] if len(classes) == 2 else classes)]
    best = np.zeros(X.shape[1])
    ok = np.isfinite(X)
    for t in targets:
        for j in range(X.shape[1]):
            m = ok[:, j]
            if m.sum() < 3:
                continue
            x, tt = X[m, j], t[m]
            sx, st = x.std(), tt.std()
            if sx == 0 or st == 0:
                continue
            r = abs(float(np.mean((x - x.mean()) * (tt - tt.mean())) / (sx * st)))
            best[j] = max(best[j], r)
    return best


def _task_of(y: np.ndarray) -> str:
    y = np.asarray(y)
    if y.dtype.kind == "f" and not np.all(np.equal(np.mod(y, 1), 0)):
        return "regression"
    return "regression" if len(np.unique(y)) > 20 else "classification"


# --- the computations (numpy; the ONNX converter mirrors each line) -------------------------------
def arithmetic(a: np.ndarray, b: np.ndarray, primitive: str) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    with np.errstate(all="ignore"):
        if primitive == "add_numeric":
            r = a + b
        elif primitive == "subtract_numeric":
            r = a - b
        elif primitive == "multiply_numeric":
            r = a * b
        else:
            r = np.where(b == 0, np.float32(np.nan), a / b)
    return np.where(np.isinf(r), np.float32(np.nan), r).astype(np.float32)


def _floordiv(a: np.ndarray, b: float) -> np.ndarray:
    return np.floor(a / b)


def civil_from_days(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(year, month, day) from days since 1970-01-01, float64 throughout (Hinnant, chrono-Compatible
    Low-Level Date Algorithms); every intermediate is an integer far below 2**53, so exact."""
    z = days + 719468.0
    era = _floordiv(z, 146097.0)
    doe = z - era * 146097.0
    yoe = _floordiv(doe - _floordiv(doe, 1460.0) + _floordiv(doe, 36524.0) - _floordiv(doe, 146096.0), 365.0)
    doy = doe - (365.0 * yoe + _floordiv(yoe, 4.0) - _floordiv(yoe, 100.0))
    mp = _floordiv(5.0 * doy + 2.0, 153.0)
    d = doy - _floordiv(153.0 * mp + 2.0, 5.0) + 1.0
    late = (mp >= 10.0).astype(np.float64)
    m = mp + 3.0 - 12.0 * late
    y = yoe + era * 400.0 + late
    return y, m, d


def days_from_civil_jan1(y: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of January 1st of year y (January counts in the previous March-year)."""
    yp = y - 1.0
    era = _floordiv(yp, 400.0)
    yoe = yp - era * 400.0
    doe = yoe * 365.0 + _floordiv(yoe, 4.0) - _floordiv(yoe, 100.0) + 306.0
    return era * 146097.0 + doe - 719468.0


def datetime_part(seconds: np.ndarray, primitive: str) -> np.ndarray:
    s = np.asarray(seconds, dtype=np.float64)
    days = _floordiv(s, 86400.0)
    if primitive in ("year", "month", "day", "day_of_year"):
        y, m, d = civil_from_days(days)
        if primitive == "day_of_year":
            out = days - days_from_civil_jan1(y) + 1.0
        else:
            out = {"year": y, "month": m, "day": d}[primitive]
    elif primitive == "weekday":
        w = days + 3.0
        out = w - 7.0 * _floordiv(w, 7.0)
    else:
        sod = s - days * 86400.0
        hour = _floordiv(sod, 3600.0)
        out = hour if primitive == "hour" else _floordiv(sod - hour * 3600.0, 60.0)
    return out.astype(np.float32)


_WS = " \n\t"


def text_count(values: np.ndarray, primitive: str) -> np.ndarray:
    import string

    punct = set(string.punctuation)
    vals = ["" if v is None else str(v) for v in np.asarray(values, dtype=object).reshape(-1)]
    if primitive == "num_characters":
        return np.asarray([len(v) for v in vals], dtype=np.float32)
    import re

    out = [sum(1 for w in re.split(r"[ \n\t]", v) if w and not set(w) <= punct) for v in vals]
    return np.asarray(out, dtype=np.float32)


# --- which features exist ---------------------------------------------------------------------------
Enumerated = list[tuple[str, tuple[str, ...], str]]  # (primitive, base columns, featuretools name) per feature
# featuretools' answer over all of the data's columns of a kind (remember()): the answer for any of them in
# the same order and any primitives is its filter (tests/unit/test_synthesis.py checks it against featuretools)
_known: dict[str, tuple[tuple[str, ...], Enumerated]] = {}


def enumerate_columns(columns: dict[str, list[str]]) -> dict[str, tuple[tuple[str, ...], Enumerated]]:
    """featuretools' features of every primitive the engine computes, over each kind's columns (names only:
    which features exist does not depend on the values). For remember()."""
    blank = {"numeric": 0.0, "datetime": pd.Timestamp(0), "text": ""}
    return {kind: (tuple(names), _ft_enumerate(pd.DataFrame({c: [blank[kind]] * 2 for c in names}), kind,
                                               PRIMITIVES[kind]))
            for kind, names in columns.items() if names}


def remember(table: dict[str, tuple[tuple[str, ...], Enumerated]]) -> None:
    """Keep enumerate_columns' answer in this process (and those it forks from now on): fits over those
    columns then need no featuretools."""
    _known.update(table)


def enumerated(kind: str, columns: Sequence[str]) -> bool:
    """Whether this process knows the features of these `kind` columns (remember)."""
    return kind in _known and set(columns) <= set(_known[kind][0])


def import_featuretools() -> None:
    """Import featuretools into this process (its warnings silenced), so that the processes it forks inherit
    it instead of each importing its own (seconds): where the features were not enumerated ahead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import featuretools  # noqa: F401


def _enumerate(frame: pd.DataFrame, kind: str, primitives: Sequence[str]) -> Enumerated:
    names = list(frame.columns)
    if kind in _known and all(isinstance(c, str) for c in names):
        order = {c: i for i, c in enumerate(_known[kind][0])}
        at = [order.get(c, -1) for c in names]
        if -1 not in at and at == sorted(at):
            cols, prims = set(names), set(primitives)
            return [f for f in _known[kind][1] if f[0] in prims and set(f[1]) <= cols]
    return _ft_enumerate(frame, kind, primitives)


# --- the transformer ------------------------------------------------------------------------------
def _ft_enumerate(frame: pd.DataFrame, kind: str, primitives: Sequence[str]) -> Enumerated:
    """featuretools DFS over one table: (primitive, base columns, featuretools name) per feature."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import featuretools as ft

        df = frame.copy()
        df.insert(0, "__automl_row__", np.arange(len(df)))
        types = {"numeric": "Double", "datetime": "Datetime", "text": "NaturalLanguage"}[kind]
        es = ft.EntitySet("automl")
        es.add_dataframe(dataframe=df, dataframe_name="rows", index="__automl_row__",
                         logical_types={c: types for c in frame.columns})
        defs = ft.dfs(entityset=es, target_dataframe_name="rows", trans_primitives=list(primitives),
                      agg_primitives=[], max_depth=1, features_only=True)
    out = []
    for d in defs:
        prim = getattr(d, "primitive", None)
        if prim is None or not d.base_features:
            continue  # the identity features (the raw columns themselves)
        out.append((prim.name, tuple(b.get_name() for b in d.base_features), d.get_name()))
    return out


class DFSFeatures(TransformerMixin, BaseEstimator):
    """featuretools-enumerated transform features of one column kind, top `max_features` by relevance.

    `kind`: numeric | datetime | text. `primitives`: featuretools primitive names of that kind
    (default: all the engine can compute). `max_inputs`: numeric columns entering DFS (the most
    relevant ones; bounds the pairwise blow-up). `max_features`: features kept (None = all).
    """

    def __init__(self, kind: str = "numeric", primitives: Sequence[str] | None = None,
                 max_features: int | None = 20, max_inputs: int = 8):
        self.kind = kind
        self.primitives = primitives
        self.max_features = max_features
        self.max_inputs = max_inputs

    def _frame(self, X: Any) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            return X.reset_index(drop=True)
        X = np.asarray(X)
        return pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])

    def _column(self, F: pd.DataFrame, j: int) -> np.ndarray:
        col = F.iloc[:, j]
        if self.kind == "text":
            return col.to_numpy(dtype=object)
        return col.to_numpy(dtype=np.float64 if self.kind == "datetime" else np.float32)

    def _compute(self, F: pd.DataFrame, feature: tuple[str, tuple[int, ...]]) -> np.ndarray:
        prim, idx = feature
        if self.kind == "numeric":
            return arithmetic(self._column(F, idx[0]), self._column(F, idx[1]), prim)
        if self.kind == "datetime":
            return datetime_part(self._column(F, idx[0]), prim)
        return text_count(self._column(F, idx[0]), prim)

    def fit(self, X: Any, y: Any = None) -> DFSFeatures:
        F = self._frame(X)
        self.feature_names_in_ = np.asarray([str(c) for c in F.columns], dtype=object)
        self.n_features_in_ = F.shape[1]
        prims = tuple(self.primitives) if self.primitives else PRIMITIVES[self.kind]
        bad = sorted(set(prims) - set(PRIMITIVES[self.kind]))
        if bad:
            raise ValueError(f"primitives {bad} have no ONNX form here; use {PRIMITIVES[self.kind]}")
        task = _task_of(y) if y is not None else ""
        inputs = list(range(F.shape[1]))
        if self.kind == "numeric" and len(inputs) > self.max_inputs and y is not None:
            score = relevance(F.to_numpy(dtype=np.float64), y, task)
            inputs = sorted(np.argsort(-score, kind="stable")[: self.max_inputs].tolist())
        sub = F.iloc[:, inputs].copy()  # the real names: featuretools orders commutative inputs by name
        position = {str(F.columns[j]): j for j in inputs}
        if self.kind == "numeric":
            sub = sub.astype("float64")
        elif self.kind == "datetime":
            sub = sub.apply(lambda c: pd.to_datetime(c * 1e9, unit="ns", errors="coerce"))
        else:
            sub = sub.astype(str)
        enumerated = _enumerate(sub.head(50), self.kind, prims)
        feats = [(p, tuple(position[b] for b in bases)) for p, bases, _ in enumerated]
        values = np.column_stack([self._compute(F, f) for f in feats]) if feats else np.zeros((len(F), 0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # all-NaN columns
            varies = np.nan_to_num(np.nanstd(values, axis=0)) > 0
        if feats and not varies.all():  # e.g. HOUR of a date-only column: constant in training, dropped
            keep = np.flatnonzero(varies) if varies.any() else np.arange(1)
            feats, values = [feats[i] for i in keep], values[:, keep]
        if self.max_features is not None and len(feats) > self.max_features and y is not None:
            score = relevance(values, y, task)
            top = sorted(np.argsort(-score, kind="stable")[: self.max_features].tolist())
            feats = [feats[i] for i in top]
        self.features_ = feats
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "features_")
        F = self._frame(X)
        if F.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {F.shape[1]} columns, but DFSFeatures was fitted on {self.n_features_in_}")
        if not self.features_:
            return np.zeros((len(F), 0), dtype=np.float32)
        return np.column_stack([self._compute(F, f) for f in self.features_]).astype(np.float32)

    def feature_name(self, feature: tuple[str, tuple[int, ...]]) -> str:
        """The name featuretools gives the feature (`a / b`, `MONTH(d)`, `NUM_WORDS(t)`)."""
        prim, idx = feature
        cols = [str(self.feature_names_in_[i]) for i in idx]
        if prim in _OP:
            return f"{cols[0]} {_OP[prim]} {cols[1]}"
        return f"{prim.upper()}({cols[0]})"

    def definition(self, feature: tuple[str, tuple[int, ...]]) -> str:
        prim, idx = feature
        cols = [str(self.feature_names_in_[i]) for i in idx]
        if prim in _OP:
            text = f"{_DEF[prim]}({cols[0]}, {cols[1]}) = {cols[0]} {_OP[prim]} {cols[1]}"
            return text + (f" (missing where {cols[1]} is 0)" if prim == "divide_numeric" else "")
        if self.kind == "datetime":
            extra = " (Monday = 0)" if prim == "weekday" else ""
            return f"{prim}({cols[0]}): the {prim.replace('_', ' ')} of {cols[0]} in UTC{extra}"
        what = "words (space/tab/newline separated, not only punctuation)" if prim == "num_words" else "characters"
        return f"{prim}({cols[0]}): number of {what} in {cols[0]}"

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        check_is_fitted(self, "features_")
        return np.asarray([self.feature_name(f) for f in self.features_], dtype=object)


class RelevanceSelector(TransformerMixin, BaseEstimator):
    """Feature selection after synthesis: keep the `keep` share (at least `min_keep`) of columns with
    the highest relevance score on the training fold; NaN-tolerant, so it works before imputation too."""

    def __init__(self, keep: float = 0.5, min_keep: int = 1, task: str = "auto"):
        self.keep = keep
        self.min_keep = min_keep
        self.task = task

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def fit(self, X: Any, y: Any) -> RelevanceSelector:
        from sklearn.utils.validation import validate_data

        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan", dtype=np.float64)
        task = self.task if self.task != "auto" else _task_of(y)
        task = "regression" if task == "regression" else "classification"
        self.scores_ = relevance(X, y, task)
        k = min(X.shape[1], max(self.min_keep, int(np.ceil(self.keep * X.shape[1]))))
        self.support_ = np.zeros(X.shape[1], dtype=bool)
        self.support_[np.sort(np.argsort(-self.scores_, kind="stable")[:k])] = True
        self.indices_ = np.flatnonzero(self.support_)
        return self

    def transform(self, X: Any) -> np.ndarray:
        from sklearn.utils.validation import validate_data

        check_is_fitted(self, "indices_")
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=None)
        return X[:, self.indices_]

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        names = input_features if input_features is not None else [f"x{i}" for i in range(self.n_features_in_)]
        return np.asarray(names, dtype=object)[self.indices_]
