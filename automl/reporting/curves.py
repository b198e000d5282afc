"""Holdout curves for the report in plain numpy (confusion matrix, ROC, precision-recall).

The same definitions as scikit-learn's confusion_matrix, roc_curve (drop_intermediate=False) and
precision_recall_curve, without importing scikit-learn: `automl report RUN_DIR` in a fresh process
saves its import time (seconds on a loaded machine). tests/unit/test_report_curves.py checks them
against scikit-learn.
"""
from __future__ import annotations

import numpy as np


def confusion(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts of (actual, predicted) class codes 0..n_classes-1."""
    return np.bincount(np.asarray(y, dtype=np.int64) * n_classes + np.asarray(pred, dtype=np.int64),
                       minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _cumulative(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True and false positives at each distinct threshold, from the highest score down."""
    order = np.argsort(score, kind="mergesort")[::-1]
    s, t = score[order], (y[order] == 1).astype(np.float64)
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each run of equal scores
    tps = np.cumsum(t)[last]
    fps = 1 + last - tps
    return tps, fps, s[last]


def roc(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """False and true positive rates (starting at 0, 0) and the area under the curve; y is 0/1."""
    tps, fps, _ = _cumulative(np.asarray(y), np.asarray(score, dtype=np.float64))
    tpr, fpr = np.r_[0.0, tps] / tps[-1], np.r_[0.0, fps] / fps[-1]
    return fpr, tpr, float(np.trapezoid(tpr, fpr))


def precision_recall(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall by decreasing recall, ending at (1, 0) as scikit-learn's curve does."""
    tps, fps, _ = _cumulative(np.asarray(y), np.asarray(score, dtype=np.float64))
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0]
