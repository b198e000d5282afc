"""The report's numpy curves agree with scikit-learn's on random scores with ties."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import auc, confusion_matrix, precision_recall_curve, roc_auc_score, roc_curve

from automl.reporting.curves import confusion, precision_recall, roc


@pytest.mark.parametrize("seed", range(5))
def test_curves_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 300))
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    score = np.round(rng.random(n) * 0.5 + 0.4 * y, 1 + seed % 3)  # rounding makes ties
    fpr, tpr, area = roc(y, score)
    fpr_s, tpr_s, _ = roc_curve(y, score, drop_intermediate=False)
    np.testing.assert_allclose(fpr, fpr_s)
    np.testing.assert_allclose(tpr, tpr_s)
    assert area == pytest.approx(roc_auc_score(y, score)) and area == pytest.approx(auc(fpr_s, tpr_s))
    prec, rec = precision_recall(y, score)
    prec_s, rec_s, _ = precision_recall_curve(y, score, drop_intermediate=False)
    np.testing.assert_allclose(prec, prec_s)
    np.testing.assert_allclose(rec, rec_s)
    labels = rng.integers(0, 3, n)
    np.testing.assert_array_equal(confusion(labels, y, 3), confusion_matrix(labels, y, labels=[0, 1, 2]))
