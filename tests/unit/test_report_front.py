"""report.html's deployment section (automl/reporting/front.py): the front plotted from the leaderboard's
measured trials, the shipped graph's measurement, the constraints that bound the choice."""
from __future__ import annotations

import pandas as pd

from automl.reporting.front import front_part
from automl.reporting.html import Figures


def test_front_section_plots_the_measured_trials_and_says_what_bound_the_choice():
    lb = pd.DataFrame({"trial": ["0", "1", "2", "ensemble"], "family": ["linear", "hgb", "rf", "ensemble"],
                       "cv_mean": [0.80, 0.86, 0.85, 0.87], "onnx_kb": [3.0, 120.0, 900.0, None],
                       "onnx_ms_p50": [0.01, 0.05, 0.4, None], "front": [True, True, False, False]})
    final = {"trial": "0", "deployment": {"latency_ms_p50": 0.01, "latency_ms_p90": 0.02, "batch_ms_per_1k": 0.5,
                                          "model_mb": 0.003, "method": "one thread",
                                          "machine": {"cpu": "x", "cores": 2}},
             "constraints": {"limits": {"max_model_mb": 0.05}, "bound_by": ["max_model_mb"], "cv_cost": 0.06,
                             "refused": [{"plan": "trial 1 (hgb)", "cv": 0.86,
                                          "broke": ["max_model_mb: 0.12 > 0.05 MB"], "latency_ms_p50": 0.05,
                                          "model_mb": 0.12, "batch_ms_per_1k": 2.0}]}}
    html = "".join(front_part(lb, final, "roc_auc", Figures(), lambda *a, **k: True))
    assert "id=deployment" in html and "bound by max_model_mb" in html and "CV cost 0.06" in html
    assert html.count("<img") == 2 and "Pareto front: CV against single-row p50" in html
    assert "trial 1 (hgb)" in html
    # nothing measured and no deployment figures: no section
    assert front_part(lb.assign(onnx_kb=None), {}, "roc_auc", None, lambda *a, **k: False) == []
