"""The synthesis parts of a trial's ColumnTransformer, from its preprocessing choices.

Every part reads raw model-frame columns (the graph's inputs) and is fitted inside the fold:
- `dt`: date parts of datetime columns (always, when there are any: it is how dates are used);
- `dfs`: featuretools-enumerated arithmetic between numeric columns, top-k by relevance;
- `txtstat`: word and character counts of text columns;
- `poly`: degree-2 interactions of the k most relevant numeric columns (PolynomialFeatures);
- `pca`: principal components of the standardised numeric columns, appended.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from automl.data.roles import Schema
from automl.features.synthesis import DFSFeatures, RelevanceSelector

# featuretools primitive sets offered to the search
DFS_SETS = {
    "arithmetic": ("add_numeric", "subtract_numeric", "multiply_numeric", "divide_numeric"),
    "ratios": ("divide_numeric",),
    "products": ("multiply_numeric", "divide_numeric"),
}
DATETIME_SETS = {
    "basic": ("year", "month", "weekday", "hour"),
    "full": ("year", "month", "day", "weekday", "hour", "minute", "day_of_year"),
}


def _impute_scale(pre: Mapping[str, Any], always_impute: bool = False) -> list[tuple[str, Any]]:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    steps: list[tuple[str, Any]] = []
    if always_impute or not pre.get("native_nan", False):
        steps.append(("impute", SimpleImputer(strategy="median", keep_empty_features=True)))
    if pre.get("scaler", "none") != "none":
        # synthesised magnitudes (products, ratios) are unbounded: standardise, whatever the raw scaler
        steps.append(("scale", StandardScaler()))
    return steps


def synthesis_parts(pre: Mapping[str, Any], schema: Schema) -> list[tuple[str, Any, list[str]]]:
    from sklearn.decomposition import PCA
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    parts: list[tuple[str, Any, list[str]]] = []
    num, dt, text = schema.names("numeric"), schema.names("datetime"), schema.names("text")
    if dt:
        parts_set = DATETIME_SETS[pre.get("datetime_parts", "full")]
        parts.append(("dt", Pipeline([("parts", DFSFeatures("datetime", parts_set, max_features=None)),
                                      *_impute_scale(pre)]), dt))
    if len(num) >= 2 and pre.get("dfs", False):
        dfs = DFSFeatures("numeric", DFS_SETS[pre.get("dfs_primitives", "arithmetic")],
                          max_features=int(pre.get("dfs_max_features", 10)))
        parts.append(("dfs", Pipeline([("dfs", dfs), *_impute_scale(pre)]), num))
    if text and pre.get("text_stats", False):
        parts.append(("txtstat", Pipeline([("counts", DFSFeatures("text", max_features=None)),
                                           *_impute_scale({**pre, "native_nan": True})]), text))
    if len(num) >= 2 and pre.get("poly", False):
        k = min(int(pre.get("poly_top_k", 4)), len(num))
        steps = [
            *_impute_scale(pre, always_impute=True)[:1],
            ("top", RelevanceSelector(keep=0.0, min_keep=k)),
            ("poly", PolynomialFeatures(degree=2, interaction_only=True, include_bias=False)),
        ]
        if pre.get("scaler", "none") != "none":
            steps.append(("scale", StandardScaler()))
        parts.append(("poly", Pipeline(steps), num))
    n_pca = min(int(pre.get("pca_components", 0)), len(num))
    if len(num) >= 2 and n_pca:
        parts.append(("pca", Pipeline([*_impute_scale(pre, always_impute=True)[:1], ("std", StandardScaler()),
                                       ("pca", PCA(n_components=n_pca, random_state=0))]), num))
    return parts


def data_context(schema: Schema) -> dict[str, Any]:
    """What the data offers, for `when:` clauses of synthesis choices (no text -> no text choices)."""
    return {"has_text": bool(schema.names("text")), "has_datetime": bool(schema.names("datetime")),
            "has_numeric_pairs": len(schema.names("numeric")) >= 2}


def enumerating(pre: Mapping[str, Any], schema: Schema) -> dict[str, list[str]]:
    """The columns, by kind, whose features featuretools enumerates in a pipeline built from `pre` (its
    choices, or True for every choice the space can sample)."""
    kinds = {"datetime": True, "numeric": bool(pre.get("dfs", False)) and len(schema.names("numeric")) >= 2,
             "text": bool(pre.get("text_stats", False))}
    return {kind: schema.names(kind) for kind, used in kinds.items() if used and schema.names(kind)}


def describe(pipe: Any) -> list[dict[str, str]]:
    """The synthesised features a fitted pipeline's model uses (after feature selection), with their
    definitions: what the model card lists."""

    if not hasattr(pipe, "named_steps") or "pre" not in pipe.named_steps:
        return []
    ct = pipe.named_steps["pre"]
    select = pipe.named_steps.get("select")
    kept = set(select.indices_.tolist()) if select is not None else None
    rows: list[dict[str, str]] = []

    def add(part: str, offset: int, name: str, definition: str) -> None:
        if kept is None or offset in kept:
            rows.append({"part": part, "feature": name, "definition": definition})

    for name, trans, cols in ct.transformers_:
        sl = ct.output_indices_.get(name)
        if sl is None or trans == "drop" or sl.stop == sl.start:
            continue
        steps = dict(trans.steps) if hasattr(trans, "steps") else {name: trans}
        dfs = next((s for s in steps.values() if isinstance(s, DFSFeatures)), None)
        if dfs is not None:
            for i, f in enumerate(dfs.features_):
                add(name, sl.start + i, dfs.feature_name(f), dfs.definition(f))
        elif name == "poly":
            top = steps["top"]
            inputs = [str(c) for c in (cols if isinstance(cols, list) else [cols])]
            chosen = [inputs[i] for i in top.indices_]
            for i, n in enumerate(steps["poly"].get_feature_names_out(chosen)):
                if " " in n:  # the interactions (the degree-1 terms repeat raw columns)
                    a, b = n.split(" ")
                    add(name, sl.start + i, f"{a} x {b}", f"interaction({a}, {b}) = {a} * {b} "
                        f"(after median imputation; {a} and {b} are among the {len(chosen)} most relevant "
                        "numeric columns)")
        elif name == "pca":
            pca = steps["pca"]
            for i, r in enumerate(pca.explained_variance_ratio_):
                add(name, sl.start + i, f"pca{i}", f"principal component {i + 1} of the {pca.n_features_in_} "
                    f"standardised numeric columns ({100 * r:.1f}% of their variance)")
        elif name.startswith("text") and "svd" in steps:
            vec = steps["vec"]
            kind = "TF-IDF" if type(vec).__name__ == "TfidfVectorizer" else "word counts"
            for i in range(sl.stop - sl.start):
                add(name, sl.start + i, f"{cols}_svd{i}", f"truncated-SVD component {i + 1} of the {kind} of "
                    f"'{cols}' ({len(vec.vocabulary_)} terms)")
        elif name.startswith("text"):
            n_used = sum(1 for i in range(sl.start, sl.stop) if kept is None or i in kept)
            kind = "TF-IDF weight" if type(trans).__name__ == "TfidfVectorizer" else "count"
            rows.append({"part": name, "feature": f"{cols}: {n_used} terms",
                         "definition": f"{kind} of each of {n_used} terms of '{cols}' (of {sl.stop - sl.start} "
                                       "in the vocabulary), tokenised and lowercased inside the graph"})
    return rows
