"""Deployment constraints in the search (automl/search/deploy_cost.py): each finished trial's excess over the
limits reaches TPE's constrained mode, from its own measured graph or its family's exported trials."""
from __future__ import annotations

import warnings
from pathlib import Path

from automl.search.deploy_cost import search_constraints
from automl.search.study import make_study


def test_off_without_limits():
    assert search_constraints(0.0, 0.0) is None


def test_excess_from_the_trial_or_its_family_reaches_the_sampler(tmp_path: Path):
    func = search_constraints(0.5, 0.01)
    assert func is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the engine's study is made without a warning on Optuna 4.9 and 5.x
        study = make_study(tmp_path / "study.journal", "t", "maximize", "tpe", 0, 10, True, "none",
                           constraints_func=func)
    # (family, attrs): a big forest measured; a forest not exported (its family's median); a small linear
    # model measured; a linear model whose family has nothing measured yet is not this case (see below)
    plan = [("forest", {"onnx_bytes": 3_000_000, "onnx_ms_p50": 0.9}), ("forest", {}),
            ("linear", {"onnx_bytes": 3_000, "onnx_ms_p50": 0.05}), ("knn", {})]
    for fam, attrs in plan:
        study.enqueue_trial({"family": fam})
        t = study.ask()
        t.suggest_categorical("family", ["forest", "linear", "knn"])
        for k, v in attrs.items():
            t.set_user_attr(k, v)
        study.tell(t, 1.0)
    got = [list(t.system_attrs["constraints"]) for t in study.trials]
    assert got[0] == [3.0 - 0.01, 0.9 - 0.5] and got[1] == got[0]  # measured; then the family's median
    assert got[2][0] < 0 and got[2][1] < 0  # within both limits: feasible
    assert got[3] == [0.0, 0.0]  # nothing known of the family: feasible until measured
