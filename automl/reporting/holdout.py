"""The report's holdout figures: predicted vs actual and residuals (regression), or the confusion
matrix at the model's decision rule, ROC and precision-recall curves (classification)."""
from __future__ import annotations

from typing import Any

import numpy as np

from automl.evaluation.metrics import labels_from_proba
from automl.reporting.curves import confusion, precision_recall, roc
from automl.reporting.html import Figures, esc


def class_probabilities(pred: np.ndarray) -> np.ndarray:
    """[N, C] probabilities; a 1-D array is the positive class of a binary task."""
    return pred if pred.ndim == 2 else np.column_stack([1 - pred, pred])


def decision_rule(classes: list[Any], threshold: float | None) -> str:
    """How `label` is chosen, in the words the figure and the counts table use."""
    if threshold is None or len(classes) != 2:
        return "most probable class"
    return f"{classes[1]} where p({classes[1]}) >= {threshold:.6g}"


def confusion_counts(y: np.ndarray, pred: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Counts of (actual, predicted) with labels from the graph's decision rule (labels_from_proba)."""
    proba = class_probabilities(pred)
    return confusion(y, labels_from_proba(proba, threshold), proba.shape[1])


def confusion_table(cm: np.ndarray, classes: list[Any], rule: str) -> str:
    """The confusion matrix's counts as a folded table: exact numbers beside the picture."""
    names = [esc(c) for c in classes]
    head = "<th>actual \\ predicted</th>" + "".join(f"<th>{n}</th>" for n in names)
    rows = "".join(f"<tr><th>{names[i]}</th>" + "".join(f"<td>{int(v)}</td>" for v in cm[i]) + "</tr>"
                   for i in range(cm.shape[0]))
    return (f"<details><summary>confusion matrix counts (rows actual, columns predicted: {esc(rule)})</summary>"
            f"<div class=scroll><table class=confusion><tr>{head}</tr>{rows}</table></div></details>")


def _regression(figs: Figures, y: np.ndarray, pred: np.ndarray) -> list[str]:
    fig, ax = figs.new()
    ax.scatter(y, pred, s=8, alpha=0.5)
    lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1)
    ax.set(xlabel="actual", ylabel="predicted", title="Holdout: predicted vs actual")
    out = [figs.img(fig, "predicted vs actual")]
    fig, ax = figs.new()
    ax.scatter(pred, y - pred, s=8, alpha=0.5)
    ax.axhline(0, color="grey", lw=1)
    ax.set(xlabel="predicted", ylabel="actual - predicted", title="Holdout: residuals")
    out.append(figs.img(fig, "residuals"))
    return out


def _confusion_figure(figs: Figures, cm: np.ndarray, names: list[str], rule: str) -> str:
    fig, ax = figs.new(4.2 + 0.2 * len(names), 3.6 + 0.2 * len(names))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black")  # readable on dark cells
    ax.set(xlabel=f"predicted ({rule})", ylabel="actual", title="Holdout: confusion matrix")
    return figs.img(fig, "confusion matrix")


def _curves(figs: Figures, y: np.ndarray, proba: np.ndarray, names: list[str]) -> list[str]:
    pairs = [(1, names[1])] if proba.shape[1] == 2 else list(enumerate(names))
    fig_roc, ax_roc = figs.new()
    fig_pr, ax_pr = figs.new()
    for k, name in pairs:
        yk = (y == k).astype(int)
        if yk.min() == yk.max():
            continue
        fpr, tpr, area = roc(yk, proba[:, k])
        ax_roc.plot(fpr, tpr, label=f"{name} (AUC {area:.3f})")
        prec, rec = precision_recall(yk, proba[:, k])
        ax_pr.plot(rec, prec, label=f"{name} (base rate {yk.mean():.3f})")
    ax_roc.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="Holdout: ROC")
    ax_pr.set(xlabel="recall", ylabel="precision", title="Holdout: precision-recall")
    for ax in (ax_roc, ax_pr):
        ax.legend(fontsize=7)
    return [figs.img(fig_roc, "ROC curve"), figs.img(fig_pr, "precision-recall curve")]


def holdout_figures(figs: Figures, task: str, y: np.ndarray, pred: np.ndarray, classes: list[Any],
                    threshold: float | None = None) -> str:
    """The holdout figures as one grid; for a classifier, the confusion matrix's counts below it.
    `threshold`: the binary decision threshold the graph's `label` applies, if one was tuned."""
    if task == "regression":
        return "<div class=grid>" + "".join(_regression(figs, y, pred)) + "</div>"
    proba = class_probabilities(pred)
    names = [str(c) for c in classes]
    rule = decision_rule(names, threshold)
    cm = confusion_counts(y, proba, threshold)
    grid = [_confusion_figure(figs, cm, names, rule), *_curves(figs, y, proba, names)]
    return "<div class=grid>" + "".join(grid) + "</div>" + confusion_table(cm, names, rule)
