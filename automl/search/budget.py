"""The run's clock: the Budget, the time the search keeps for the final stage, what shipping a trial costs.

The search stops while there is still time to refit, export and check the best trial that can be
shipped, plus the reports (`reserve`); the final stage (automl/run.py) prices its candidates with
`final_cost` and falls back on `last_resort` when the clock has run out.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from automl.data.split import INNER_MAX_SHARE
from automl.estimators import REGISTRY

SAFETY = 1.5  # a plan's cost is kept free x this for it to follow a costlier attempt that fails (estimates err)
GRACE_SHARE = 0.05  # of the budget, past the deadline, for the fallbacks of an attempt that failed
# seconds per categorical level per export: converting the encoder's map of every level and loading it in
# onnxruntime, on one core (benchmarks/export_levels.py; its figures in benchmarks/RESULTS.md, session 40)
LEVEL_EXPORT_S = 7e-5


@dataclass
class Budget:
    """Wall-clock accounting for the whole run (started when the process started)."""
    start: float
    time_s: float
    n_trials: int = 0
    trial_time_s: float = 0.0
    trial_memory_mb: float = 0.0
    reports_s: float = 2.0  # card, leaderboard, manifest, interpreter exit
    # seconds the driver spends after the search before the final stage that no attempt prices: loading the
    # export stack when trials did not (stages/prepare.py trials_export); run.py clears it once loaded
    pending_s: float = 0.0
    refit_full: bool = True  # the final stage fits twice (search rows, then all rows)
    final_scale: float = 1.0  # rows the final model is fitted on over the search rows (sampled data)
    holdout_scale: float = 1.0  # scoring the holdout vs scoring one CV fold (sampled data: a large holdout)
    holdout_rows: int = 0  # rows the final stage scores twice (Python, onnxruntime); 0 = priced by holdout_scale
    used_before: float = 0.0  # seconds an earlier, crashed run of this study already spent
    rescore_top: int = 0  # the best trials scored again on fresh folds after the search (stages/rescore.py)
    concurrent: bool = False  # trials ran beside another worker's (their seconds are longer than alone)
    # room kept for an ensemble's refit: None until the search asks whether one would be chosen
    # (search/ensemble_room.py), then the answer
    ensemble_room: bool | None = None
    ensemble_extra_s: float | None = None  # with ensemble_room: what its other members' refits cost
    grace_open: bool = False  # a final-stage attempt failed: what follows it may run in the grace
    export_levels: int = 0  # categorical levels in the model frame: each member's encoder maps them all

    @property
    def deadline(self) -> float:
        return self.start + self.time_s

    def left(self) -> float:
        return self.deadline - time.time()

    @property
    def grace_s(self) -> float:
        """Seconds past the deadline what follows a failed attempt (the next rung, the last resort) may run:
        a run ends by the deadline when its first attempt ships, and by 1.05 x budget (+ the stated 3 s) when
        it does not."""
        return GRACE_SHARE * self.time_s

    def kept(self, keep_s: float) -> float:
        """Of `keep_s` seconds kept free for what follows a failed attempt, those that must come before the
        deadline (the rest runs in the grace). The search's reserve and the final stage's ladder both count
        keeps this way, so the search stops exactly when the first attempt still fits. Once an attempt has
        failed the grace is part of final_room, and a keep is kept whole."""
        return keep_s if self.grace_open else max(0.0, keep_s - self.grace_s)

    def final_room(self) -> float:
        """Seconds the final stage's next attempt has, the reports' share kept: to the deadline, and once an
        attempt has failed to the end of the grace that kept() left its followers (a 300 s run whose stack
        overran kept 0 s for its best single, priced 3.6 s, which then found -0.1 s left and a model 8% worse
        shipped)."""
        return self.left() - self.reports_s + (self.grace_s if self.grace_open else 0.0)


def final_cost(attrs: dict[str, Any], n_folds: int, refit_full: bool = True, scale: float = 1.0,
               holdout_scale: float = 1.0, holdout_rows: int = 0, grows: bool = False,
               early_ratio: float = 1.0, levels: int = 0) -> float:
    """Expected seconds to refit, export and check a trial's pipeline: the sum of final_cost_parts."""
    return sum(final_cost_parts(attrs, n_folds, refit_full, scale, holdout_scale, holdout_rows, grows,
                                early_ratio, levels).values())


def final_cost_parts(attrs: dict[str, Any], n_folds: int, refit_full: bool = True, scale: float = 1.0,
                     holdout_scale: float = 1.0, holdout_rows: int = 0, grows: bool = False,
                     early_ratio: float = 1.0, levels: int = 0) -> dict[str, float]:
    """Expected seconds to refit a trial's pipeline on all search rows (and, with refit_full, on all
    rows), export it and check parity, from what its CV folds cost. `scale`: the final sample's rows over
    the search rows (a sampled run refits on a larger sample than it searched;
    automl/search/sample_size.py). `early_ratio`: a refit's seconds per row and round over those of the
    family's early-stopped fit (EstimatorSpec.early_refit_ratio)."""
    # the search-rows refit sees 1/(k-1) more rows than a fold did (and `scale` times more on a larger sample);
    # one inner split (n_folds=1) trained on at least 1 - INNER_MAX_SHARE of them
    grow = scale * (n_folds / (n_folds - 1) if n_folds > 1 else 1.0 / (1.0 - INNER_MAX_SHARE))
    rows = grow * (1.25 if refit_full else 1.0)  # rows of the shipped model relative to a fold's
    fit = 1.2 * refit_share(attrs, early_ratio) * attrs.get("fold_fit_s", 1.0) * (grow + (rows if refit_full else 0.0))
    # export and parity time grow with model size, which for trees grows with the rows (x1.0: a random
    # forest's two final exports and parity took 6.3 s where x1.5 priced 9.7 s; final['estimated_s'] in
    # each run's manifest records the price beside the timings)
    export = 1.0 * attrs.get("export_s", 0.5) * (rows + (grow if refit_full else 0.0))  # + the scored model
    if levels and (attrs.get("export_estimated") or "export_s" not in attrs):
        # an estimated export scales the estimator's fit, but the encoder's map of every categorical level is
        # converted and loaded in each export whatever the estimator (a trial that was exported measured it)
        export += LEVEL_EXPORT_S * levels * (2 if refit_full else 1)
    # scoring the holdout: what scoring one validation fold cost (a trial's time beyond its fits), times
    # `holdout_scale` (holdout rows over a fold's, twice: Python and onnxruntime) and `scale` for families
    # whose prediction cost grows with the training rows (k-NN: 1.6 s fits in a 220 s trial). That rest holds
    # more than scoring (the trial's process, rung fit and export check: 7-25x what scoring the holdout took,
    # benchmarks/final_cost_check.py) and stays in the price as a buffer: without it, refits that the fit and
    # export parts underprice (a large random forest's ONNX scoring; a linear model on vocabulary at 2.7x its
    # price) timed out and worse models shipped (benchmarks/RESULTS.md, session 27)
    k = max(n_folds, 1)
    per_fold = max(attrs.get("seconds", 0.0) - k * attrs.get("fold_fit_s", 0.0), 0.0) / k
    ms = attrs.get("predict_ms_per_row")
    if holdout_rows and ms is not None:
        # the trial's measured cost per row, on the holdout rows twice, times `scale` only for a family whose
        # prediction cost grows with the training rows (`grows`: k-NN); the rest of a fold's time (process,
        # transforms) once. Multiplying that rest by both scales priced a 48k-row refit of a sampled run at
        # the whole search, and the baseline shipped
        predict = 1.2 * (per_fold + ms / 1000 * 2 * holdout_rows * (max(scale, 1.0) if grows else 1.0))
    else:
        predict = 1.2 * per_fold * max(scale, 1.0) * holdout_scale
    # benchmarks/final_cost_check.py sets each part beside what the final stage measured
    return {"fit": fit, "export": export, "predict": predict, "fixed": 0.5}


def refit_share(attrs: dict[str, Any], early_ratio: float) -> float:
    """A refit's fit time over its fold fit's, per row: an early-stopped booster refits only the rounds it
    kept (not the patience past them) and scores no validation rows each round (German health, CatBoost:
    a 6.6 s fold fit was priced as a 22 s refit, which took 12.4 s)."""
    kept, trained = attrs.get("best_rounds"), attrs.get("trained_rounds")
    if not kept or not trained:
        return 1.0
    return early_ratio * min(float(kept) / float(trained), 1.0)


def trial_final_cost(attrs: dict[str, Any], n_folds: int, budget: Budget, family: str = "",
                     scale: float | None = None) -> float:
    """final_cost with the budget's refit, sample and holdout scales (`scale`: another sample's)."""
    spec = REGISTRY.get(family) if family and family in REGISTRY else None
    # a constant's graph converts no encoder (EstimatorSpec.uses_features): the levels cost it nothing
    levels = budget.export_levels if spec is None or spec.uses_features else 0
    return final_cost(attrs, n_folds, budget.refit_full, budget.final_scale if scale is None else scale,
                      budget.holdout_scale, budget.holdout_rows, bool(spec and spec.predict_grows),
                      spec.early_refit_ratio if spec else 1.0, levels)


def last_resort(done: list[Any], cost: Callable[[Any], float], constant: Callable[[Any], bool] = lambda t: False,
                room: float = float("inf")) -> list[Any]:
    """The trials shipped when the clock has run out, whatever their cost, in order: the best-ranked
    (`done` is sorted best first) among the cheap ones, those expected to cost at most twice the
    cheapest model or one second more, then that cheapest model if it is another trial (estimates made
    under load can be off by more than the time limit allows), then a constant (`constant`: the baseline)
    if one is cheaper still. The tier is priced on models, not on the constant: the baseline reads only the
    number of rows and costs a fraction of any model (priced on it, a 60 s run's tier held the baseline
    alone: benchmarks/RESULTS.md, session 42), and for a ranking metric it is no model at all (average
    precision = the prevalence). A model that costs more than `room` (the final stage's seconds, its grace
    included) prices nothing: then the constant does."""
    costs = [cost(t) for t in done]
    models = [c for t, c in zip(done, costs, strict=True) if not constant(t)]
    floor = min(models) if models and min(models) <= room else min(costs)
    best = next(t for t, c in zip(done, costs, strict=True) if c <= max(2.0 * floor, floor + 1.0))
    cheapest = done[costs.index(floor)]
    least = done[costs.index(min(costs))]
    out: list[Any] = []
    for t in (best, cheapest, least):
        if not any(t is o for o in out):
            out.append(t)
    return out


def is_constant(family: str) -> bool:
    """Whether a family's model ignores the features (EstimatorSpec.uses_features False: the baseline)."""
    return family in REGISTRY and not REGISTRY.get(family).uses_features


def is_baseline(trial: Any) -> bool:
    """Whether a completed trial's model is a constant (is_constant of its family)."""
    return is_constant(trial.params.get("family", ""))


def unseen_cost(family: str) -> float:
    """Seconds a family not yet run is assumed to need: a few, scaled by its relative cost tag."""
    return max(0.5, 3.0 * min(REGISTRY.get(family).cost, 1.0))


def room_when(budget: Budget, completed: Any) -> float:
    """Seconds the final stage had left when a trial completed at `completed` (a datetime), as first_attempt_s
    counts them; the budget's full room if unknown."""
    at = completed.timestamp() if completed is not None else time.time()
    return budget.deadline - at - margin(budget)


def margin(budget: Budget) -> float:
    """Seconds kept free at the end whatever else is kept: the reports, what the driver does before the final
    stage (pending_s), plus a share of the budget."""
    return 0.5 + budget.reports_s + budget.pending_s + 0.01 * budget.time_s


def cv_seconds(attrs: dict[str, Any]) -> float:
    """A completed trial's seconds without its export: what scoring it again on other folds costs."""
    export = 0.0 if attrs.get("export_estimated") else float(attrs.get("export_s") or 0.0)
    return max(float(attrs.get("seconds", 1.0)) - export, 0.1)


RESCORE_SHARE = 0.1  # at most this share of the budget goes to scoring the best trials again
# A trial scored again alone takes this share of the seconds it took in a search of two workers on two cores:
# median of 12 re-scores, german_health seed 4 at 60 s (0.53-1.27; benchmarks/RESULTS.md, session 30)
SOLO_RATIO = 0.65


def rescore_s(seconds: list[tuple[float, float]], budget: Budget) -> float:
    """Expected time to score the best `budget.rescore_top` trials again, alone: what their own CV took (less
    when the search ran workers side by side), at most RESCORE_SHARE of the budget. `seconds`: (score, trial
    seconds) of the trials that may be re-scored, the higher score the better."""
    if budget.rescore_top <= 0:
        return 0.0
    took = sum(s for _, s in sorted(seconds, reverse=True)[:budget.rescore_top])
    return min(took * (SOLO_RATIO if budget.concurrent else 1.0), RESCORE_SHARE * budget.time_s)


def first_attempt_s(done: Sequence[tuple[float, ...]], budget: Budget) -> float:
    """Seconds kept for the final stage's first attempt: shipping the best trial that can still be shipped in
    time, and room to refit one or two more pipelines if greedy ensemble selection wants them (unless the
    search found that no ensemble would be chosen: search/ensemble_room.py). `done`: (score, final-stage
    cost[, seconds left for the final stage when it completed]) of the completed trials, the higher score the
    better. A trial that could be shipped when it completed stays reserved for: dropping it once another
    worker's trial has run past its point (vocabulary: a k-fold MLP priced at 9.7 s, 12 s left) let the search
    go on, and a linear model shipped instead of it."""
    room = budget.left() - margin(budget)
    shippable = [(d[0], d[1]) for d in done if d[1] <= max(room, d[2] if len(d) > 2 else room)]
    cost = max(shippable)[1] if shippable else 0.0
    if budget.ensemble_room is False:
        return cost
    room = min(1.5 * cost, 0.1 * budget.time_s)
    if budget.ensemble_extra_s is None:
        return cost + room
    # the final stage tries an ensemble only while the best single can still follow it (stages/final.py
    # safety_keep: SAFETY x its cost, what the deadline's grace does not cover); x1.2 + 1 s: the members may
    # change as trials complete after the question was answered. Where that does not fit the room, the room
    # goes back to the search: kept, it would hold time for an ensemble the final stage then does not try
    need = 1.2 * budget.ensemble_extra_s + 1.0 + budget.kept(SAFETY * cost)
    return cost + (need if need <= room else 0.0)


def reserve(done: Sequence[tuple[float, ...]], budget: Budget, rescore: float = 0.0) -> float:
    """Time to keep for the final stage's first attempt (first_attempt_s) plus the reports, and `rescore`
    seconds to score the best trials again first. A better trial too costly to ship does not stop the search."""
    if not done:  # nothing to ship yet: a first trial is worth the reports' share (they shrink to fit)
        return 1.0 + 0.02 * budget.time_s
    # and the time the final stage keeps free for its last resort while it tries them (run.py fallback_s),
    # estimated from the cheapest model: the last resort is usually that trial or one close to it in cost
    floor = resort_floor(done)
    keep = 1.5 * min(2.0 * floor, floor + 1.0) + 0.5
    return first_attempt_s(done, budget) + budget.kept(keep) + margin(budget) + rescore


def resort_floor(done: Sequence[tuple[float, ...]]) -> float:
    """The final-stage cost of the cheapest completed model: `done` entries (score, cost, room[, constant]),
    a constant (the baseline, 1.0 in the fourth place) counted only when nothing else completed. What the
    last resort costs (last_resort prices its tier so): a keep priced on the baseline, which reads only the
    number of rows, left a 60 s run too little for any model at the end (benchmarks/RESULTS.md, session 42)."""
    models = [d[1] for d in done if not (len(d) > 3 and d[3])]
    return min(models or [d[1] for d in done])


def completed_costs(study: Any, sign: int, n_folds: int,
                    budget: Budget) -> tuple[list[tuple[float, float, float, float]], list[tuple[float, float]]]:
    """(sign * score, final-stage cost, the final stage's room when it completed: budget.room_when, 1.0 for a
    constant: resort_floor) of every worker's completed trials, and (sign * score, CV seconds) of those that
    may be scored again (the baseline is a constant). Read from the shared storage before
    each trial: a worker that kept time only for its own trials left the final stage too little for
    another worker's better, costlier one."""
    from optuna.trial import TrialState

    done: list[tuple[float, float, float, float]] = []
    seconds: list[tuple[float, float]] = []
    for t in study.get_trials(deepcopy=False, states=[TrialState.COMPLETE]):
        family = t.params.get("family", "")
        done.append((sign * t.values[0], trial_final_cost(t.user_attrs, n_folds, budget, family),
                     room_when(budget, t.datetime_complete), float(is_constant(family))))
        if not is_constant(family):
            seconds.append((sign * t.values[0], cv_seconds(t.user_attrs)))
    return done, seconds
