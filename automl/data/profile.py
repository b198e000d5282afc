"""Data profile: what the data looks like and what may be wrong with it (profile.json + model card)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from automl.data.roles import Schema

HIGH_CARDINALITY = 50
HEAVY_MISSING = 0.5
LEAK_SCORE = 0.99
QUANTILES = (0.01, 0.25, 0.5, 0.75, 0.99)  # the streamed profile approximates the same ones
IMBALANCE_RATIO = 10.0  # majority / minority at or above which the target is flagged as imbalanced


def _numeric_stats(s: pd.Series) -> dict[str, Any]:
    v = pd.to_numeric(s, errors="coerce").astype("float64").replace([np.inf, -np.inf], np.nan).dropna()
    if v.empty:
        return {}
    q1, q3 = np.percentile(v, [25, 75])
    iqr = q3 - q1
    out = ((v < q1 - 1.5 * iqr) | (v > q3 + 1.5 * iqr)).mean() if iqr > 0 else 0.0
    return {
        "mean": float(v.mean()), "std": float(v.std()) if len(v) > 1 else 0.0,
        "min": float(v.min()), "max": float(v.max()),
        "outlier_share": round(float(out), 4),
        "skew": round(float(v.skew()), 4) if len(v) > 2 else 0.0,
        "quantiles": {str(q): float(x) for q, x in zip(QUANTILES, np.quantile(v, QUANTILES), strict=True)},
    }


def _leak_score(x: pd.Series, y: np.ndarray, task: str, seed: int) -> float:
    """How well one column alone predicts the target (3-fold CV of a shallow tree)."""
    from sklearn.model_selection import cross_val_score
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    if pd.api.types.is_numeric_dtype(x):
        X = (pd.to_numeric(x, errors="coerce").astype("float64").replace([np.inf, -np.inf], np.nan)
             .fillna(-1e12).to_numpy().reshape(-1, 1))
    else:
        X = pd.factorize(x.astype(str))[0].reshape(-1, 1)
    if task == "regression":
        model = DecisionTreeRegressor(max_depth=6, random_state=seed)
        return float(np.mean(cross_val_score(model, X, y, cv=3, scoring="r2")))
    model = DecisionTreeClassifier(max_depth=6, random_state=seed)
    return float(np.mean(cross_val_score(model, X, y, cv=3, scoring="accuracy")))


def build_profile(df: pd.DataFrame, target: str, task: str, schema: Schema, seed: int,
                  max_rows_leak: int = 5000) -> dict[str, Any]:
    n = len(df)
    y = df[target]
    columns: list[dict[str, Any]] = []
    warnings: list[str] = []
    leak_df = df.sample(n=min(n, max_rows_leak), random_state=seed) if n > max_rows_leak else df
    y_leak = leak_df[target]
    ok = y_leak.notna().to_numpy()
    y_enc = pd.factorize(y_leak[ok])[0] if task != "regression" else y_leak[ok].to_numpy(dtype=float)
    for c in schema.columns:
        s = df[c.name]
        miss = float(s.isna().mean())
        info: dict[str, Any] = {
            "name": c.name, "role": c.role, "dtype": c.dtype, "missing_pct": round(100 * miss, 2),
            "cardinality": int(s.nunique(dropna=True)),
        }
        if c.reason:
            info["reason"] = c.reason
        if c.role == "numeric":
            info.update(_numeric_stats(s))
            if pd.api.types.is_float_dtype(s):
                n_inf = int(np.isinf(s.to_numpy(dtype=float)).sum())
                if n_inf:
                    info["infinite"] = n_inf
                    warnings.append(f"column '{c.name}' holds {n_inf} infinite value(s); they are treated as missing")
        if c.role in ("categorical", "text", "id") and s.dtype == object:
            as_num = pd.to_numeric(s.dropna(), errors="coerce")
            share = float(as_num.notna().mean()) if len(as_num) else 0.0
            if 0.5 <= share < 1.0:
                bad = s.dropna()[as_num.isna()].iloc[0]
                warnings.append(f"column '{c.name}' mixes numbers ({100 * share:.0f}%) and text (e.g. {bad!r}); "
                                "it is treated as categorical: clean it to use it as a number")
        if c.role in ("categorical", "text"):
            top = s.astype(str).value_counts().head(5)
            info["top_values"] = {str(k): int(v) for k, v in top.items()}
        columns.append(info)
        if c.role == "id" and c.reason.startswith("declared in data.group_column"):
            warnings.append(f"column '{c.name}' is the group key (data.group_column): the split keeps its groups "
                            "whole; excluded from features")
        elif c.role == "id":
            warnings.append(f"column '{c.name}' looks like an ID ({c.reason}); excluded from features")
        elif c.role == "constant":
            warnings.append(f"column '{c.name}' is constant ({c.reason}); excluded from features")
        if c.role == "categorical" and info["cardinality"] > HIGH_CARDINALITY:
            warnings.append(f"column '{c.name}' has high cardinality ({info['cardinality']} levels); "
                            "rare levels are grouped")
        if miss > HEAVY_MISSING:
            warnings.append(f"column '{c.name}' is {100 * miss:.0f}% missing")
        if c.is_feature and ok.sum() >= 30:
            score = _leak_score(leak_df[c.name][ok], y_enc, task, seed)
            info["single_column_score"] = round(score, 4)
            if score >= LEAK_SCORE:
                kind = "R^2" if task == "regression" else "accuracy"
                warnings.append(f"column '{c.name}' alone predicts the target almost perfectly "
                                f"({kind} {score:.3f}): possible leakage")
                info["leakage_suspect"] = True
    target_info: dict[str, Any] = {"name": target, "missing": int(y.isna().sum())}
    if task == "regression":
        target_info.update(_numeric_stats(y))
    else:
        counts = y.value_counts()
        target_info["classes"] = {str(k): int(v) for k, v in counts.items()}
        ratio = float(counts.max() / counts.min())
        target_info["imbalance_ratio"] = round(ratio, 2)
        target_info["minority_class"] = str(counts.idxmin())
        target_info["minority_share"] = round(float(counts.min() / counts.sum()), 4)
        target_info["imbalanced"] = bool(ratio >= IMBALANCE_RATIO)
        if ratio >= IMBALANCE_RATIO:
            warnings.append(f"target '{target}' is imbalanced (majority/minority = {ratio:.1f}; class "
                            f"'{counts.idxmin()}' is {100 * counts.min() / counts.sum():.1f}% of rows): accuracy and "
                            "roc_auc say little about the minority class; consider task.metric=average_precision, "
                            "f1, balanced_accuracy or precision_at_recall")
    dup = int(df.duplicated().sum())
    if dup:
        warnings.append(f"{dup} duplicate rows ({100 * dup / n:.1f}%)")
    return {
        "n_rows": n, "n_columns": df.shape[1], "task": task, "target": target_info,
        "duplicate_rows": dup, "n_features": len(schema.features),
        "roles": {r: schema.names(r) for r in ("numeric", "categorical", "text", "datetime", "id", "constant")},
        "columns": columns, "warnings": warnings,
    }
