"""The final stage on its own: the candidate pool, the ensemble selection within its room, and the ladder
(ensemble -> ranked trials -> last resorts) with an injected refit, so no model is fitted."""
from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import numpy as np

from automl.config.schema import TaskConfig
from automl.data.split import RANDOM
from automl.ensemble import diverse_pool
from automl.evaluation.metrics import get_metric
from automl.io import RunPaths, fresh_oof_file
from automl.search.budget import Budget
from automl.search.supervisor import COMPLETE, TIMEOUT, Outcome
from automl.stacking import Stacker
from automl.stages import ensemble_choice
from automl.stages import final as final_mod
from automl.stages.final import FinalStage, select_ensemble
from automl.stages.stack_choice import StackChoice


def _cost(monkeypatch, fn: Any) -> None:
    """Every trial's final-stage seconds, as the ladder and the ensemble selection price them."""
    monkeypatch.setattr(final_mod, "trial_final_cost", fn)
    monkeypatch.setattr(ensemble_choice, "trial_final_cost", fn)


def test_pool_adds_other_families_best_trials():
    """The candidate pool keeps the top of the leaderboard and adds each other family's best two, so
    a leaderboard topped by one family still offers the selection something to average with."""
    ranked = [SimpleNamespace(number=i, params={"family": "hgb"}) for i in range(30)]
    ranked += [SimpleNamespace(number=100 + i, params={"family": "mlp"}) for i in range(3)]
    ranked += [SimpleNamespace(number=200, params={"family": "linear"})]
    pool = diverse_pool(ranked, top=12, per_family=2, cap=24)
    assert [t.number for t in pool] == [*range(12), 100, 101, 200]
    assert len(diverse_pool(ranked, top=12, per_family=2, cap=13)) == 13


def _oof_trials(tmp_path, n: int = 3) -> tuple[list[Any], np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    to_p = lambda s: np.c_[1 - 1 / (1 + np.exp(-s)), 1 / (1 + np.exp(-s))]  # noqa: E731
    paths = RunPaths(tmp_path)
    paths.oof.mkdir(exist_ok=True)
    trials = []
    for i in range(n):  # independent noise: averaging any two beats each alone
        np.save(paths.oof_file(i), to_p(y + rng.normal(0, 1.0, 400)))
        trials.append(SimpleNamespace(number=i, params={"family": f"f{i}"}, user_attrs={}, values=[0.8 - 0.01 * i]))
    return trials, y


def test_selection_keeps_the_last_resorts_time_free(tmp_path, monkeypatch):
    """The final stage tries the ensemble only if it fits once the last resort's time is kept free, so
    the selection picks members within that same room: before, it chose in more room, and a 3-member
    ensemble (OOF 40.44 vs 40.51 RMSE) was skipped for the single ("expected 4.6s, 3.2s left")."""
    trials, y = _oof_trials(tmp_path)
    _cost(monkeypatch, lambda *a, **k: 5.0)  # every member: 5 s to refit and export
    # the selection's own measured time is taken from the room too: on a loaded machine 75 scores took
    # over 2 s, which is not what this test is about, so the stage's clock stands still
    monkeypatch.setattr(ensemble_choice, "time", SimpleNamespace(perf_counter=lambda: 0.0, time=time.time))
    data = SimpleNamespace(y=y, folds=[None] * 3, n_classes=2, task="binary", tune_threshold=False,
                           scored=np.arange(len(y)), oof_y=y)
    paths = RunPaths(tmp_path)
    budget = Budget(start=time.time(), time_s=30.0, reports_s=2.0)

    roomy = select_ensemble(trials, data, get_metric("roc_auc"), paths, budget, keep_s=0.0)
    assert roomy is not None and len(roomy["members"]) == 3  # 15 s of 28 s
    tight = select_ensemble(trials, data, get_metric("roc_auc"), paths, budget, keep_s=17.0)
    assert tight is not None and len(tight["members"]) == 2  # 10 s fit in 1.15 x 11 s, 15 s do not
    assert select_ensemble(trials, data, get_metric("roc_auc"), paths, budget, keep_s=22.0) is None


def test_selection_reads_a_rescored_trials_fresh_oof_beside_its_own(tmp_path, monkeypatch):
    """A trial whose first folds were lucky (its OOF near the truth) but whose fresh folds were not loses
    its weight once selection averages the two OOF predictions (repeated CV)."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 600)
    to_p = lambda s: np.c_[1 - 1 / (1 + np.exp(-s)), 1 / (1 + np.exp(-s))]  # noqa: E731
    paths = RunPaths(tmp_path)
    paths.oof.mkdir(exist_ok=True)
    np.save(paths.oof_file(0), to_p(1.5 * y + rng.normal(0, 1.0, 600)))  # lucky on its first folds
    trials = [SimpleNamespace(number=0, params={"family": "extra_trees"}, user_attrs={}, value=0.9)]
    for i in (1, 2):
        np.save(paths.oof_file(i), to_p(y + rng.normal(0, 1.0, 600)))
        trials.append(SimpleNamespace(number=i, params={"family": f"f{i}"}, user_attrs={}, value=0.8))
    _cost(monkeypatch, lambda *a, **k: 1.0)
    data = SimpleNamespace(y=y, folds=[None] * 3, n_classes=2, task="binary", tune_threshold=False,
                           scored=np.arange(len(y)), oof_y=y)
    budget = Budget(start=time.time(), time_s=60.0, reports_s=2.0)

    def weights() -> dict[int, float]:
        sel = select_ensemble(trials, data, get_metric("roc_auc"), paths, budget)
        assert sel is not None
        return {t.number: w for t, w in sel["members"]}

    before = weights()
    np.save(fresh_oof_file(paths.oof, 0), to_p(rng.normal(0, 3.0, 600)))  # no signal on the fresh folds
    after = weights()
    assert max(before, key=before.get) == 0 and max(after, key=after.get) != 0
    assert after.get(0, 0.0) < 0.7 * before[0], (before, after)


class FakeRefit:
    """Stands in for the supervised refit: each family ends as told, and every attempt is recorded."""

    def __init__(self, ends: dict[str, str]):
        self.ends, self.calls = ends, []

    def __call__(self, fn: Any, args: tuple[Any, ...], *, timeout_s: float, memory_mb: float,
                 on_message: Any = None) -> Outcome:
        families = tuple(c.family for c, _ in args[1])
        self.calls.append(families)
        end = self.ends.get(families[0] if len(families) == 1 else "ensemble", COMPLETE)
        if end == "TIMEOUT_AFTER_CHECKPOINT":  # the holdout-scored model sent, then its refit on all rows ran late
            assert args[-1].checkpoint and on_message is not None
            on_message(("checkpoint", {"model": b"holdout-scored onnx", "parity": {"passed": True}}))
            return Outcome(TIMEOUT, None, f"exceeded its time limit of {timeout_s:.1f}s")
        if end == COMPLETE:
            return Outcome(COMPLETE, {"model": b"onnx", "parity": {"passed": True}})
        if end == "PARITY":
            return Outcome(COMPLETE, {"parity_error": "max diff 0.1 > 1e-4", "parity_failed_members": []})
        if end == "PARITY_FIRST_MEMBER":
            return Outcome(COMPLETE, {"parity_error": "max diff 0.1 > 1e-4", "parity_failed_members": [0]})
        if end == "PARITY_APART":  # the first member fails; only a gate in the refit's process can name it
            return Outcome(COMPLETE, {"parity_error": "max diff 0.1 > 1e-4",
                                      "parity_failed_members": None if args[-1].gate_apart else [0]})
        return Outcome(end, None, "killed")


def _stage(tmp_path, trials: list[Any], y: np.ndarray, refit: FakeRefit, time_s: float = 60.0) -> FinalStage:
    cfg = SimpleNamespace(export=SimpleNamespace(parity_tol=1e-4, parity_rows=100, refit_full=False, variants=[],
                                                 variant_tol=0.0),
                          budget=SimpleNamespace(time_s=time_s, memory_mb=0), task=TaskConfig(target="y"),
                          search=SimpleNamespace(stacking=True))
    folds = [(np.array([], dtype=int), np.arange(len(y))[i::3]) for i in range(3)]
    data = SimpleNamespace(y=y, folds=folds, n_classes=2, task="binary", tune_threshold=False,
                           metric=get_metric("roc_auc"), scored=np.arange(len(y)), oof_y=y, structure=RANDOM,
                           seed=0)
    budget = Budget(start=time.time(), time_s=time_s, reports_s=2.0, trial_memory_mb=500.0)
    prep = SimpleNamespace(X_hold=None, y_hold=np.zeros(0), classes=[0, 1], sampled=None, hold_groups=None,
                           memory_bound=False)
    searched = SimpleNamespace(budget=budget, data=data, final_data=data, study=None)
    return FinalStage(cfg, prep, searched, RunPaths(tmp_path), {}, run_supervised=refit)


def test_a_failed_ensemble_refit_ships_the_best_single_and_says_why(tmp_path, monkeypatch):
    trials, y = _oof_trials(tmp_path)
    _cost(monkeypatch, lambda *a, **k: 1.0)
    refit = FakeRefit({"ensemble": "TIMEOUT"})
    res = _stage(tmp_path, trials, y, refit).run(trials)
    assert res.status == "COMPLETE" and res.ensemble_selection is not None
    assert refit.calls[0] == ("f0", "f1", "f2") and refit.calls[1] == ("f0",)
    assert res.final["kind"] == "single" and res.final["trial"] == 0 and res.final["cv_mean"] == 0.8
    assert "ensemble of trials" in res.final["fallback_reason"] and "TIMEOUT" in res.final["fallback_reason"]


def test_an_ensemble_whose_refit_on_all_rows_ran_late_ships_as_the_holdout_scored_it(tmp_path, monkeypatch):
    """The refit's checkpoint (automl/stages/checkpoint.py): stopped after it, the attempt ships the plan the search
    found, fitted on the search rows, instead of the next plan down; the card says why it was not refit on all."""
    trials, y = _oof_trials(tmp_path)
    _cost(monkeypatch, lambda *a, **k: 1.0)
    refit = FakeRefit({"ensemble": "TIMEOUT_AFTER_CHECKPOINT"})
    res = _stage(tmp_path, trials, y, refit).run(trials)
    assert res.status == "COMPLETE" and refit.calls == [("f0", "f1", "f2")]
    assert res.final["kind"] == "ensemble" and res.final["model"] == b"holdout-scored onnx"
    assert "was stopped (TIMEOUT: exceeded its time limit" in res.final["refit_full_skipped"]
    assert "fallback_reason" not in res.final and not res.failures


def test_after_an_ensemble_overruns_the_best_single_ships_in_the_grace_the_ensemble_left_it(tmp_path, monkeypatch):
    """The ensemble's attempt keeps free only what the grace (5% of the budget) does not cover of the best
    single's refit, so once it has failed the single may run into the grace. A 300 s run's stack overran its
    7.4 s and its best single (3.6 s) found "-0.1s left": an XGBoost 8% worse shipped."""
    trials, y = _oof_trials(tmp_path)
    trials.append(SimpleNamespace(number=9, params={"family": "baseline"}, user_attrs={"cost": 0.5}, values=[0.5]))
    _cost(monkeypatch, lambda attrs, *a, **k: attrs.get("cost", 2.0))
    stage = _stage(tmp_path, trials, y, FakeRefit({}), time_s=300.0)
    refit = ClockRefit({"ensemble": "TIMEOUT"}, stage.budget)
    stage.run_supervised = refit
    stage.budget.start -= 290.0  # 10 s to the deadline, 8 s once the reports' 2 s are kept
    res = stage.run(trials)
    assert len(refit.calls[0]) == 3 and refit.calls[-1] == ("f0",), refit.calls
    assert res.final["trial"] == 0 and "TIMEOUT" in res.final["fallback_reason"]
    assert stage.budget.left() > -stage.budget.grace_s  # the ensemble's time plus the single's, within the grace


def test_a_parity_failure_moves_down_the_ranking_and_is_not_retried_as_a_last_resort(tmp_path, monkeypatch):
    trials, y = _oof_trials(tmp_path, 1)
    trials += [SimpleNamespace(number=5, params={"family": "g"}, user_attrs={}, values=[0.7]),
               SimpleNamespace(number=6, params={"family": "baseline"}, user_attrs={}, values=[0.5])]
    _cost(monkeypatch, lambda *a, **k: 1.0)
    refit = FakeRefit({"f0": "PARITY", "g": "PARITY"})
    res = _stage(tmp_path, trials, y, refit).run(trials)
    assert res.status == "COMPLETE" and res.final["trial"] == 6
    assert refit.calls == [("f0",), ("g",), ("baseline",)]  # no second attempt at f0 as the best cheap one
    assert res.final["fallback_reason"].count("max diff") == 2


def test_a_refit_stopped_by_a_ranked_attempts_limit_is_retried_as_the_last_resort(tmp_path, monkeypatch):
    """A timeout under a ranked attempt's tight limit is not a reason to skip the trial as a last resort, which
    gets 4x its estimate: the best cheap trial ships, not the cheapest (the baseline)."""
    trials, y = _oof_trials(tmp_path, 1)
    trials += [SimpleNamespace(number=5 + i, params={"family": f"g{i}"}, user_attrs={}, values=[0.7]) for i in (0, 1)]
    trials.append(SimpleNamespace(number=9, params={"family": "baseline"}, user_attrs={"cost": 0.5}, values=[0.5]))
    _cost(monkeypatch, lambda attrs, *a, **k: attrs.get("cost", 1.0))

    class SlowFirst(FakeRefit):
        """The first refit runs out of its limit; every later one completes."""

        def __init__(self, ends: dict[str, str]):
            super().__init__(ends)
            self.limits: list[float] = []

        def __call__(self, fn: Any, args: tuple[Any, ...], *, timeout_s: float, memory_mb: float,
                     on_message: Any = None) -> Outcome:
            self.limits.append(timeout_s)
            if not self.calls:
                self.calls.append(tuple(c.family for c, _ in args[1]))
                return Outcome("TIMEOUT", None, "killed")
            return super().__call__(fn, args, timeout_s=timeout_s, memory_mb=memory_mb)

    refit = SlowFirst({"g0": "PARITY", "g1": "PARITY"})  # three ranked attempts fail: the last resorts follow
    res = _stage(tmp_path, trials, y, refit).run(trials)
    assert refit.calls == [("f0",), ("g0",), ("g1",), ("f0",)] and refit.limits[-1] >= 4.0  # a resort's limit
    assert res.status == "COMPLETE" and res.final["trial"] == 0


def test_when_time_has_run_out_only_the_last_resort_is_tried(tmp_path, monkeypatch):
    """Ranked trials whose refit cannot fit are skipped without a refit; the last resort runs anyway."""
    trials, y = _oof_trials(tmp_path, 1)
    trials.append(SimpleNamespace(number=9, params={"family": "baseline"}, user_attrs={"cheap": True}, values=[0.5]))
    _cost(monkeypatch, lambda attrs, *a, **k: 0.1 if attrs.get("cheap") else 500.0)
    refit = FakeRefit({})
    res = _stage(tmp_path, trials, y, refit, time_s=20.0).run(trials)
    assert refit.calls == [("baseline",)]
    assert res.status == "COMPLETE" and res.final["trial"] == 9
    assert "expected 500.0s" in res.final["fallback_reason"]


def test_no_completed_trial_fails_the_stage_with_a_reason(tmp_path):
    res = _stage(tmp_path, [], np.zeros(4), FakeRefit({})).run([])
    assert res.status == "FAILED" and res.error == "no trial completed within the budget" and res.final == {}


class ClockRefit(FakeRefit):
    """A refit that ends as told and, when it times out, uses up its whole time limit on the run's clock."""

    def __init__(self, ends: dict[str, str], budget: Budget):
        super().__init__(ends)
        self.budget = budget

    def __call__(self, fn: Any, args: tuple[Any, ...], *, timeout_s: float, memory_mb: float,
                 on_message: Any = None) -> Outcome:
        out = super().__call__(fn, args, timeout_s=timeout_s, memory_mb=memory_mb)
        if out.status == "TIMEOUT":
            self.budget.start -= timeout_s
        return out


def test_an_ensemble_that_overruns_is_followed_by_the_best_single_that_fits_not_the_cheapest(tmp_path, monkeypatch):
    """The ensemble's attempt keeps time for a good single: when it overruns its limit, the best-ranked
    trial that still fits ships (f2), not the last resort (the baseline), which is what a 60k-row run
    shipped when its ensemble refit overran (11% worse than what the search had found)."""
    trials, y = _oof_trials(tmp_path)
    for t, cost in zip(trials, [14.0, 14.0, 1.0], strict=True):
        t.user_attrs["cost"] = cost
    trials.append(SimpleNamespace(number=9, params={"family": "baseline"}, user_attrs={"cost": 0.2}, values=[0.5]))
    _cost(monkeypatch, lambda attrs, *a, **k: attrs["cost"])
    stage = _stage(tmp_path, trials, y, FakeRefit({}), time_s=40.0)
    refit = ClockRefit({"ensemble": "TIMEOUT"}, stage.budget)
    stage.run_supervised = refit
    res = stage.run(trials)
    assert refit.calls[0][0] == "f0" and len(refit.calls[0]) >= 2  # the ensemble, within what the keep leaves
    assert res.status == "COMPLETE" and res.final["trial"] == 0, refit.calls  # the best single, kept shippable
    assert refit.calls[1:] == [("f0",)]
    assert "TIMEOUT" in res.final["fallback_reason"]


def test_no_ensemble_when_its_overrun_would_leave_only_the_last_resort(tmp_path, monkeypatch):
    """The best single needs more than half the time left: an ensemble over it, if it overran, could be
    followed only by the baseline, so the best single is refitted first with all the time."""
    trials, y = _oof_trials(tmp_path)
    for t in trials:
        t.user_attrs["cost"] = 12.0
    trials.append(SimpleNamespace(number=9, params={"family": "baseline"}, user_attrs={"cost": 0.2}, values=[0.5]))
    _cost(monkeypatch, lambda attrs, *a, **k: attrs["cost"])
    refit = FakeRefit({})
    res = _stage(tmp_path, trials, y, refit, time_s=30.0).run(trials)
    assert refit.calls == [("f0",)] and res.final["trial"] == 0 and res.ensemble_selection is None


def test_an_ensemble_member_that_fails_parity_is_dropped_and_the_rest_reselected(tmp_path, monkeypatch):
    """The refit names the member that fails the gate on its own (a k-NN off by one neighbour on a near-tie
    row): the ensemble is re-selected without it and tried next, and that member is not refitted alone."""
    trials, y = _oof_trials(tmp_path, 4)
    _cost(monkeypatch, lambda *a, **k: 1.0)

    class FirstEnsembleFails(FakeRefit):
        def __call__(self, fn: Any, args: tuple[Any, ...], *, timeout_s: float, memory_mb: float,
                     on_message: Any = None) -> Outcome:
            if self.calls:
                self.ends = {}
            return super().__call__(fn, args, timeout_s=timeout_s, memory_mb=memory_mb)

    refit = FirstEnsembleFails({"ensemble": "PARITY_FIRST_MEMBER"})
    res = _stage(tmp_path, trials, y, refit).run(trials)
    first, second = refit.calls[0], refit.calls[1]
    assert len(refit.calls) == 2 and len(first) >= 3 and len(second) >= 2
    assert first[0] not in second, refit.calls
    assert res.final["kind"] == "ensemble" and "max diff" in res.final["fallback_reason"]


def test_an_ensemble_failing_the_gate_in_its_own_process_is_refit_once_more_to_name_its_members(tmp_path,
                                                                                                  monkeypatch):
    """The gate's own process cannot name the members that fail it (automl/stages/gate.py): the same ensemble is
    refit once more with the gate in the refit's process, which names them, and the ensemble re-selected
    without them goes next, gated apart again."""
    trials, y = _oof_trials(tmp_path, 4)
    _cost(monkeypatch, lambda *a, **k: 1.0)
    apart = []

    class NamedOnce(FakeRefit):
        def __call__(self, fn: Any, args: tuple[Any, ...], *, timeout_s: float, memory_mb: float,
                     on_message: Any = None) -> Outcome:
            apart.append(args[-1].gate_apart)
            out = super().__call__(fn, args, timeout_s=timeout_s, memory_mb=memory_mb)
            if (out.value or {}).get("parity_failed_members"):
                self.ends = {}
            return out

    refit = NamedOnce({"ensemble": "PARITY_APART"})
    res = _stage(tmp_path, trials, y, refit).run(trials)
    assert len(refit.calls) == 3 and refit.calls[0] == refit.calls[1] and len(refit.calls[0]) >= 3, refit.calls
    assert apart == [True, False, True]
    assert refit.calls[0][0] not in refit.calls[2] and len(refit.calls[2]) >= 2
    assert res.final["kind"] == "ensemble" and "max diff" in res.final["fallback_reason"]


def test_a_fallback_records_what_was_intended_and_what_it_cost(tmp_path, monkeypatch):
    trials, y = _oof_trials(tmp_path)
    _cost(monkeypatch, lambda *a, **k: 1.0)
    res = _stage(tmp_path, trials, y, FakeRefit({"f0": "PARITY", "ensemble": "PARITY"})).run(trials)
    assert res.final["trial"] == 1
    intended = res.final["intended"]
    assert "ensemble of trials" in intended["plan"] and intended["shipped_cv"] == 0.79
    sel = res.ensemble_selection
    assert intended["cv"] == (sel["stack"]["nested_oof_score"] if intended["plan"].startswith("stacked")
                              else sel["oof_score"])


def _stack_choice(score: float) -> StackChoice:
    return StackChoice(Stacker(np.eye(6, 2), np.zeros(2), "binary", 1.0), np.zeros((400, 2)), score, score - 0.01,
                       "nested", 0.1)


def test_a_stack_goes_first_and_its_overrun_skips_the_same_members_averaged(tmp_path, monkeypatch):
    trials, y = _oof_trials(tmp_path)
    _cost(monkeypatch, lambda *a, **k: 1.0)
    monkeypatch.setattr(final_mod, "choose_stack", lambda oofs, weights, data, limit: _stack_choice(0.95))
    refit = FakeRefit({})
    res = _stage(tmp_path, trials, y, refit).run(trials)
    assert len(refit.calls) == 1 and res.final["kind"] == "ensemble" and res.final["cv_mean"] == 0.95
    assert res.final["stacker"]["kind"] == "logistic" and res.ensemble_selection["stack"]["nested_oof_score"] == 0.95

    refit = FakeRefit({"ensemble": "TIMEOUT"})  # the stack overruns: the same members averaged would too
    res = _stage(tmp_path, trials, y, refit).run(trials)
    assert refit.calls[0] == ("f0", "f1", "f2") and refit.calls[1] == ("f0",)
    assert res.final["kind"] == "single" and "stacked ensemble" in res.final["fallback_reason"]


def test_small_data_still_gets_its_ensemble_when_the_time_left_is_short(tmp_path, monkeypatch):
    """Every trial cheap and little time left (the search keeps just enough): the best single stays
    shippable beside an ensemble, so the ensemble is tried (a rule of 'half the time left' refused it on a
    3k-row run and a single extra-trees model shipped)."""
    trials, y = _oof_trials(tmp_path)
    for t, cost in zip(trials, [1.8, 0.9, 0.9], strict=True):
        t.user_attrs["cost"] = cost
    trials.append(SimpleNamespace(number=9, params={"family": "baseline"}, user_attrs={"cost": 0.3}, values=[0.5]))
    _cost(monkeypatch, lambda attrs, *a, **k: attrs["cost"])
    refit = FakeRefit({})
    res = _stage(tmp_path, trials, y, refit, time_s=10.0).run(trials)
    assert res.ensemble_selection is not None and res.final["kind"] == "ensemble", refit.calls


def test_where_caruana_keeps_the_best_single_a_stack_over_the_pools_head_may_go_first(tmp_path, monkeypatch):
    trials, y = _oof_trials(tmp_path)
    _cost(monkeypatch, lambda *a, **k: 1.0)
    monkeypatch.setattr(final_mod, "select_ensemble", lambda *a, **k: None)
    seen: list[list[float]] = []

    def choose(oofs, weights, data, limit):
        seen.append(weights)
        return _stack_choice(0.95)

    monkeypatch.setattr(final_mod, "choose_stack", choose)
    refit = FakeRefit({})
    res = _stage(tmp_path, trials, y, refit).run(trials)
    assert seen == [[1.0, 0.0, 0.0]]  # the bar: the best single alone
    assert refit.calls == [("f0", "f1", "f2")] and res.final["stacker"]["kind"] == "logistic"
    # the stacker combines the members: the bar's weights (1, 0, 0) are not shipped as theirs
    assert [m["trial"] for m in res.final["members"]] == [0, 1, 2]
    assert all("weight" not in m for m in res.final["members"])
    assert res.final["cv_mean"] == 0.95 and res.ensemble_selection == {"stack": res.final["stacker"]}

    refit = FakeRefit({"ensemble": "TIMEOUT"})  # the stack overruns: the best single follows
    res = _stage(tmp_path, trials, y, refit).run(trials)
    assert refit.calls == [("f0", "f1", "f2"), ("f0",)] and res.final["trial"] == 0


def test_a_plan_whose_refit_on_all_rows_does_not_fit_ships_without_it_before_the_next_plan(tmp_path, monkeypatch):
    """export.refit_full: when the best plan's two refits do not fit the time left but its refit on the search
    rows does, that model (the one the holdout scores) ships, and the card says why, rather than a worse plan."""
    trials, y = _oof_trials(tmp_path, 1)
    trials.append(SimpleNamespace(number=5, params={"family": "cheap"}, user_attrs={"cheap": True}, values=[0.6]))
    _cost(monkeypatch, lambda attrs, n, budget, *a, **k: (
        1.0 if attrs.get("cheap") else 30.0 if budget.refit_full else 8.0))
    monkeypatch.setattr(final_mod, "select_ensemble", lambda *a, **k: None)

    class Recording(FakeRefit):
        def __call__(self, fn: Any, args: tuple[Any, ...], *, timeout_s: float, memory_mb: float,
                     on_message: Any = None) -> Outcome:
            self.full = [*getattr(self, "full", []), args[9]]
            return super().__call__(fn, args, timeout_s=timeout_s, memory_mb=memory_mb)

    refit = Recording({})
    stage = _stage(tmp_path, trials, y, refit, time_s=25.0)
    stage.cfg.export.refit_full, stage.cfg.search.stacking = True, False
    stage.prep.y_hold = np.zeros(10)
    res = stage.run(trials)
    assert refit.calls == [("f0",)] and refit.full == [False]
    assert res.final["trial"] == 0 and "refit_full" in res.final["refit_full_skipped"]


def _memory_stage(tmp_path, trials: list[Any], y: np.ndarray, refit: FakeRefit, monkeypatch) -> FinalStage:
    """A run under budget.memory_mb: trials' folds fitted on 200 of the 400 search rows, a 500 MB trial limit."""
    monkeypatch.setattr(final_mod, "fewer_rows", lambda d, n, seed: SimpleNamespace(**{**vars(d), "y": d.y[:n]}))
    stage = _stage(tmp_path, trials, y, refit)
    stage.cfg.budget.memory_mb = 1000
    stage.prep.memory_bound = True  # what prepare's refit_memory_bound says with budget.memory_mb set
    rows = np.arange(len(y))
    stage.data.folds = [(rows[:200], rows[200:]), (rows[200:], rows[:200])]
    return stage


class Rows(FakeRefit):
    """Records the rows each refit is given."""

    def __call__(self, fn: Any, args: tuple[Any, ...], *, timeout_s: float, memory_mb: float,
                 on_message: Any = None) -> Outcome:
        self.rows = [*getattr(self, "rows", []), len(args[0].y)]
        return super().__call__(fn, args, timeout_s=timeout_s, memory_mb=memory_mb)


def test_a_refit_its_trials_peak_says_will_not_fit_the_memory_limit_gets_the_rows_that_fit(tmp_path, monkeypatch):
    """A trial that peaked at 300 MB fitting 200 rows would need ~600 MB refitted on all 400 search rows, over the
    500 MB limit: it is refitted on the 333 rows its peak allows, not skipped for a worse model (the 400 MB run
    refitted its ensemble and then its k-NN on all search rows, both were stopped over the limit, and a linear
    last resort shipped)."""
    trials, y = _oof_trials(tmp_path)
    trials[0].user_attrs["peak_mb"], trials[1].user_attrs["peak_mb"] = 300.0, 200.0  # f2: not measured
    _cost(monkeypatch, lambda *a, **k: 1.0)
    refit = Rows({"ensemble": "TIMEOUT"})
    res = _memory_stage(tmp_path, trials, y, refit, monkeypatch).run(trials)
    assert res.status == "COMPLETE" and res.final["trial"] == 0 and res.final["fit_rows"] == 333
    assert set(refit.rows) == {333}, (refit.calls, refit.rows)  # the ensemble holds f0: 333 rows too
    assert "trial 0 (f0) on 400 rows: not tried, its trials peaked at 300 MB on 200 rows, ~600 MB expected, " \
           "over the 500 MB trial limit" in res.final["fallback_reason"]
    assert "500 MB trial limit" in res.final["fit_rows_reason"]

    # without a memory limit in force the peak is not a reason: all the search rows
    refit = Rows({"ensemble": "TIMEOUT"})
    stage = _memory_stage(tmp_path, trials, y, refit, monkeypatch)
    stage.cfg.budget.memory_mb = 0
    stage.prep.memory_bound = False
    res = stage.run(trials)
    assert res.final["trial"] == 0 and set(refit.rows) == {400} and "fit_rows_reason" not in res.final


def test_an_ensemble_whose_members_held_beside_its_largest_fit_pass_the_limit_is_not_started(tmp_path, monkeypatch):
    """An ensemble's members are fitted one after the other in one process, the fitted ones held while the next
    fits: the estimate adds what they hold (2 x their graph) to the largest member's peak. The 400 MB run started
    its ensemble on the rows its largest member's peak allowed, was stopped at 136 MB over a 122 MB limit, and the
    time that took cost it the best single."""
    trials, y = _oof_trials(tmp_path)
    trials[0].user_attrs["peak_mb"], trials[1].user_attrs["peak_mb"] = 300.0, 200.0
    trials[1].user_attrs["onnx_bytes"] = 150_000_000  # f1 holds ~300 MB fitted: 600 MB beside f0's fit
    _cost(monkeypatch, lambda *a, **k: 1.0)
    refit = Rows({})
    res = _memory_stage(tmp_path, trials, y, refit, monkeypatch).run(trials)
    chosen = res.ensemble_selection
    assert chosen is not None and chosen["oof_score"] > chosen["best_single_oof"]  # the ensemble was the plan
    assert refit.calls == [("f0",)] and refit.rows == [333], (refit.calls, refit.rows)  # the single: its own peak
    assert res.final["kind"] == "single" and res.final["trial"] == 0
    assert "MB of fitted members held beside" in res.final["fallback_reason"], res.final["fallback_reason"]


def test_the_last_plan_is_refitted_whatever_its_peak_says(tmp_path, monkeypatch):
    """Peaks over the limit (a trial's peak is estimated between exact counts, so a completed trial may show one):
    no plan is refitted but the last, which must ship something."""
    trials, y = _oof_trials(tmp_path)
    for t in trials:
        t.user_attrs["peak_mb"] = 600.0
    _cost(monkeypatch, lambda *a, **k: 1.0)
    refit = FakeRefit({})
    res = _memory_stage(tmp_path, trials, y, refit, monkeypatch).run(trials)
    assert len(refit.calls) == 1 and res.status == "COMPLETE"
    assert res.final["fallback_reason"].count("not tried") >= 3


def test_a_larger_final_sample_over_the_memory_limit_gives_way_to_the_search_rows(tmp_path, monkeypatch):
    trials, y = _oof_trials(tmp_path, 1)
    trials[0].user_attrs["peak_mb"] = 200.0  # 400 MB on the 400 search rows, 600 MB on a 600-row final sample
    _cost(monkeypatch, lambda *a, **k: 1.0)
    monkeypatch.setattr(final_mod, "select_ensemble", lambda *a, **k: None)
    refit = Rows({})
    stage = _memory_stage(tmp_path, trials, y, refit, monkeypatch)
    stage.final_data = SimpleNamespace(**{**vars(stage.data), "y": np.zeros(600)})
    res = stage.run(trials)
    assert refit.rows == [400] and res.final["trial"] == 0 and stage.sample_note.startswith("trial 0 (f0) on 600 rows")


class MemoutOver(Rows):
    """A refit of f0 on more than `rows` rows is stopped over the memory limit."""

    def __init__(self, rows: int):
        super().__init__({})
        self.max_rows = rows

    def __call__(self, fn: Any, args: tuple[Any, ...], *, timeout_s: float, memory_mb: float,
                 on_message: Any = None) -> Outcome:
        if len(args[0].y) > self.max_rows and args[1][0][0].family == "f0":
            self.rows = [*getattr(self, "rows", []), len(args[0].y)]
            self.calls.append(tuple(c.family for c, _ in args[1]))
            return Outcome("MEMOUT", None, f"used {memory_mb + 12:.0f} MB, over its limit of {memory_mb:.0f} MB")
        return super().__call__(fn, args, timeout_s=timeout_s, memory_mb=memory_mb)


def test_a_refit_stopped_over_the_memory_limit_is_retried_on_fewer_rows_before_the_next_plan(tmp_path, monkeypatch):
    """Its trial's peak priced the refit on all 400 search rows within the 500 MB limit; the refit was stopped over
    it. The kill is the evidence the peak missed: the same plan is refitted once on three quarters of the rows
    (300) and ships, not the next-ranked trial (the 800 MB run shipped a model 18% worse than its random forest)."""
    trials, y = _oof_trials(tmp_path)
    trials[0].user_attrs["peak_mb"] = 200.0  # 400 MB expected on 400 rows
    _cost(monkeypatch, lambda *a, **k: 1.0)
    monkeypatch.setattr(final_mod, "select_ensemble", lambda *a, **k: None)
    refit = MemoutOver(350)
    stage = _memory_stage(tmp_path, trials, y, refit, monkeypatch)
    stage.cfg.search.stacking = False
    res = stage.run(trials)
    assert refit.rows[:2] == [400, 300] and refit.calls[:2] == [("f0",), ("f0",)], (refit.calls, refit.rows)
    assert res.status == "COMPLETE" and res.final["trial"] == 0 and res.final["fit_rows"] == 300
    assert "trial 0 (f0) on 400 rows: MEMOUT" in res.final["fallback_reason"]

    # once: stopped again on the fewer rows, the next plan goes
    refit = MemoutOver(250)
    stage = _memory_stage(tmp_path, trials, y, refit, monkeypatch)
    stage.cfg.search.stacking = False
    res = stage.run(trials)
    assert refit.rows[:3] == [400, 300, 400] and refit.calls[2] == ("f1",), (refit.calls, refit.rows)
    assert res.final["trial"] == 1
