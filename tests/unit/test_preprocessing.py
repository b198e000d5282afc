"""Preprocessing choices that do not depend on the family."""


def test_indicator_only_for_columns_missing_often_enough_to_estimate():
    import numpy as np
    import pandas as pd

    from automl.preprocessing.pipeline import MIN_MISSING_FOR_INDICATOR, indicator_columns

    n = 100
    X = pd.DataFrame({"rare": [np.nan] + [1.0] * (n - 1),
                      "often": [np.nan] * MIN_MISSING_FOR_INDICATOR + [1.0] * (n - MIN_MISSING_FOR_INDICATOR),
                      "full": np.ones(n)})
    assert indicator_columns(X, ["rare", "often", "full"]) == ["often"]
