"""The study: made (sampler, pruner, storage), recovered after a crash, warm-started, and counted.

Order of the trials: the baseline and each family's default configuration run first (cheap families
first), then the sampler (TPE by default) takes over. The study lives in a journal file in the run
folder, so the same command with the same run folder resumes it. The loop that runs the trials is
automl/search/loop.py.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from automl.config.schema import RunConfig
from automl.errors import UserError
from automl.estimators import REGISTRY
from automl.evaluation.metrics import Direction
from automl.evaluation.pareto import objective_names
from automl.search import objective as obj
from automl.search import optuna_compat as oc
from automl.search.deploy_cost import search_constraints
from automl.search.storage import open_storage

OBJECTIVES_ATTR = "objectives"  # the study's search.objectives, read by every worker's loop


def directions_for(objectives: Sequence[str], direction: Direction) -> list[Direction]:
    """The study's directions: the metric's, then minimize for each cost (latency, size)."""
    costs: list[Direction] = ["minimize"] * (len(objectives) - 1)
    return [direction, *costs]


def make_study(storage_path: Path, name: str, direction: Direction, sampler: str, seed: int,
               n_startup_trials: int, multivariate: bool, pruner: str, constant_liar: bool = False,
               storage_url: str = "", heartbeat_s: int = 10,
               constraints_func: Callable[[Any], Sequence[float]] | None = None,
               objectives: Sequence[str] = ("metric",)) -> Any:
    """`storage_url` "" keeps the study in the journal file at storage_path (search.storage).
    `constraints_func`: TPE's constrained mode (automl/search/deploy_cost.py); the random sampler ignores it.
    `objectives` (normalised search.objectives, evaluation/pareto.py objective_names): more than one makes a
    multi-objective study, sampled by the same TPE (multi-objective TPE, Optuna's recommendation for budgets of
    tens to hundreds of trials; NSGA-II's default population is 50 trials, so a short search would end inside its
    first, random generation) and never pruned (Optuna's pruners take one objective)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(storage_url, storage_path, heartbeat_s)
    multi = len(objectives) > 1
    smp: optuna.samplers.BaseSampler
    if sampler == "random":
        smp = optuna.samplers.RandomSampler(seed=seed)
    else:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # constraints_func: public in 4.9, deprecated in 5.0 for Trial.set_constraint, removed in 7 (we pin <6);
            # the function form needs no change to how trials are told, on both versions
            warnings.simplefilter("ignore", FutureWarning)
            smp = optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials,
                                             multivariate=multivariate, group=multivariate,
                                             constant_liar=constant_liar, constraints_func=constraints_func)
    prn = (optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1) if pruner == "median" and not multi
           else optuna.pruners.NopPruner())
    study = optuna.create_study(storage=storage, study_name=name, directions=directions_for(objectives, direction),
                                sampler=smp, pruner=prn, load_if_exists=True)
    had = tuple(study.user_attrs.get(OBJECTIVES_ATTR, ("metric",)))
    if (study.trials and had != tuple(objectives)) or len(study.directions) != len(objectives):
        raise UserError("search.objectives", f"this study was made with objectives {list(had)}, not "
                        f"{list(objectives)}", "Use a new run folder (hydra.run.dir) or the study's own objectives.")
    if multi and had != tuple(objectives):
        study.set_user_attr(OBJECTIVES_ATTR, list(objectives))
    return study


def study_objectives(study: Any) -> tuple[str, ...]:
    """The study's normalised search.objectives, as make_study recorded them."""
    return tuple(study.user_attrs.get(OBJECTIVES_ATTR, ("metric",)))


def search_study(cfg: RunConfig, storage_path: Path, direction: Direction, seed: int, constant_liar: bool,
                 storage_url: str, metric_name: str = "") -> Any:
    """The run's study as the driver and every joining worker (automl worker) open it: the same directions
    (search.objectives), sampler, pruner and constrained sampling (constraints.*)."""
    c = cfg.constraints
    return make_study(storage_path, cfg.search.study_name, direction, cfg.search.sampler, seed,
                      cfg.search.n_startup_trials, cfg.search.multivariate, cfg.search.pruner,
                      constant_liar=constant_liar, storage_url=storage_url, heartbeat_s=cfg.search.heartbeat_s,
                      constraints_func=search_constraints(c.max_latency_ms, c.max_model_mb),
                      objectives=objective_names(cfg.search.objectives, metric_name))


def summarize(study: Any) -> dict[str, int]:
    from optuna.trial import TrialState

    out = {"completed": 0, "failed": 0, "pruned": 0}
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            out["completed"] += 1
        elif t.state == TrialState.FAIL:
            out["failed"] += 1
        elif t.state == TrialState.PRUNED:
            out["pruned"] += 1
    return out


def recover_orphans(study: Any) -> int:
    """Trials left RUNNING by a driver that died: mark them failed and retry each once."""
    from optuna.trial import TrialState

    n = 0
    for t in study.get_trials(deepcopy=False, states=[TrialState.RUNNING]):
        reason = {"status": "FAIL", "error": "orphaned: the driver stopped while it ran"}
        if not oc.fail_trial(study, t, reason):
            continue  # finished meanwhile by a process still alive: not an orphan
        if not t.user_attrs.get("retry_of") and t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        n += 1
    return n


def warm_start_queue(data: obj.SearchData) -> list[tuple[dict[str, Any], str]]:
    """(params, origin) in the order they run: each family's default configuration (cheap families
    first, no sampler and no class weights: the same trials as with search.imbalance=false), then the
    portfolio entries and the imbalance variants of the defaults (class weights, balanced bagging;
    cheap families first). The variants come before the portfolio only on an imbalanced target (the
    profile's flag) scored by a label metric (f1, balanced accuracy, ...), where the decision depends on
    the class prior; a ranking metric (average precision, ROC AUC) or log loss is not: reweighting the
    classes leaves the best ranking as it is and only adds variance (benchmarks/imbalance_probe.py, a
    rare-positive subsample of german_health: class weights lowered test AP in 11 of 12 family x draw
    pairs, balanced bagging in 10 of 11), so there the portfolio comes first."""
    families = sorted(data.families, key=lambda k: REGISTRY.get(k).cost)
    queue = [(obj.default_params(data, fam), "default") for fam in families]
    ported = [(obj.default_params(data, fam, entry), "portfolio")
              for fam in families for entry in obj.portfolio(data, fam)]
    variants = [(params, "imbalance") for fam in families for params in obj.imbalance_variants(data, fam)]
    first = obj.imbalanced(data) and data.metric.counts is not None
    return queue + (variants + ported if first else ported + variants)


def warm_start(study: Any, data: obj.SearchData, limit: int = 0) -> None:
    """Queue warm_start_queue (at most `limit` entries when limit > 0: with a trial count, each queued
    trial is one of the count)."""
    if study.trials:
        return
    queue = warm_start_queue(data)
    for params, origin in queue[:limit] if limit else queue:
        study.enqueue_trial(params, user_attrs={"origin": origin})
