"""The Pareto front of score against deployment costs, and the price of a cost limit (automl/evaluation/pareto.py)."""
from __future__ import annotations

import math

from automl.evaluation.pareto import constraint_cost, front_mask


def test_front_keeps_points_no_other_point_beats_on_every_axis():
    # (AUC, ms, MB): 0 best score; 1 dominated by 0 (worse score, slower, bigger); 2 fastest; 3 ties 2 on cost
    # with a worse score; 4 has a missing score
    scores = [0.90, 0.85, 0.80, 0.79, math.nan]
    costs = [[2.0, 5.0], [3.0, 6.0], [0.1, 0.01], [0.1, 0.01], [0.01, 0.001]]
    assert front_mask(scores, costs, True).tolist() == [True, False, True, False, False]
    # lower-is-better scores (rmse): the same points, read the other way
    assert front_mask([1.0, 2.0, 3.0], [[3.0], [2.0], [2.5]], False).tolist() == [True, True, False]


def test_constraint_cost_is_the_score_given_up_by_the_best_point_within_the_limit():
    scores, ms = [0.90, 0.85, 0.80], [2.0, 0.5, 0.1]
    assert constraint_cost(scores, ms, 10.0, True) == (0, 0.0)
    i, cost = constraint_cost(scores, ms, 1.0, True)
    assert i == 1 and math.isclose(cost, 0.05)
    assert constraint_cost(scores, ms, 0.01, True) == (None, None)
    i, cost = constraint_cost([6.0, 7.5], [5.0, 1.0], 2.0, False)  # rmse: 1.5 worse
    assert i == 1 and math.isclose(cost, 1.5)
