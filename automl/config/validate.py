"""Cross-field rules checked after composition and before any expensive work."""
from __future__ import annotations

from automl.config.schema import RunConfig
from automl.errors import UserError
from automl.estimators import REGISTRY
from automl.evaluation.calibration import METHODS as CALIBRATION_METHODS
from automl.evaluation.metrics import CONSTRAINED, DEFAULT_METRIC, METRICS
from automl.evaluation.pareto import objective_names
from automl.urls import is_url

MIN_TIME_S = 10.0


def validate_config(cfg: RunConfig) -> None:
    b, s = cfg.budget, cfg.search
    if not b.time_s > 0:
        raise UserError("budget.time_s", f"must be > 0, got {b.time_s}", "Set budget.time_s=60 (seconds, whole run).")
    if b.time_s < MIN_TIME_S:
        raise UserError("budget.time_s", f"must be at least {MIN_TIME_S:g} s (start-up, one trial, refit, export), "
                        f"got {b.time_s:g}", f"Set budget.time_s={MIN_TIME_S:g} or more.")
    if b.n_trials < 0:
        raise UserError("budget.n_trials", f"must be >= 0, got {b.n_trials}", "Use 0 for no cap.")
    if b.trial_time_s < 0 or b.trial_memory_mb < 0:
        raise UserError("budget.trial_time_s" if b.trial_time_s < 0 else "budget.trial_memory_mb",
                        "must be >= 0", "Use 0 to derive it from the run budget.")
    if b.lean_final and b.memory_mb > 0:
        raise UserError("budget.lean_final", "cannot be combined with budget.memory_mb, whose accounting covers the "
                        "driver and the processes it forks", "Set budget.lean_final=false, or budget.memory_mb=0.")
    if s.validation not in ("auto", "cv", "holdout"):
        raise UserError("search.validation", f"must be auto, cv or holdout, got {s.validation!r}",
                        "Set search.validation=auto (or cv, holdout).")
    if s.validation == "holdout" and s.cv_folds:
        raise UserError("search.cv_folds", f"is {s.cv_folds} but search.validation=holdout scores one split",
                        "Set search.cv_folds=0, or search.validation=cv.")
    if s.rescore < -1:
        raise UserError("search.rescore", f"must be -1 (auto), 0 (off) or a number of trials, got {s.rescore}",
                        "Set search.rescore=-1.")
    bad = [v for v in cfg.export.variants if v not in ("int8", "float16", "trim")]
    if bad or cfg.export.variant_tol < 0:
        raise UserError("export.variants" if bad else "export.variant_tol",
                        f"unknown variant(s) {bad}" if bad else f"must be >= 0, got {cfg.export.variant_tol}",
                        "Use export.variants=[int8,float16,trim] (or []) and export.variant_tol >= 0.")
    try:
        objective_names(s.objectives, cfg.task.metric if cfg.task.metric != "auto" else "")
    except ValueError as e:
        raise UserError("search.objectives", f"{e} in {list(s.objectives)}",
                        "Use [metric], or the metric with latency and/or size, e.g. "
                        "search.objectives=[metric,latency,size].") from None
    c = cfg.constraints
    for key in ("max_latency_ms", "max_model_mb", "max_batch_ms_per_1k"):
        if getattr(c, key) < 0:
            raise UserError(f"constraints.{key}", f"must be >= 0, got {getattr(c, key)}", "Use 0 for no limit.")
    if s.cv_folds < 0 or s.cv_folds == 1:
        raise UserError("search.cv_folds", f"must be 0 (auto) or >= 2, got {s.cv_folds}", "Set search.cv_folds=5.")
    if not 0.0 <= s.holdout < 0.9:
        raise UserError("search.holdout", f"must be in [0, 0.9), got {s.holdout}", "Set search.holdout=0.2.")
    if s.n_workers < 0:
        raise UserError("search.n_workers", f"must be >= 0 (0 = auto), got {s.n_workers}",
                        "Set search.n_workers=0 (auto) or a count of workers.")
    if s.sampler not in ("tpe", "random"):
        raise UserError("search.sampler", f"unknown sampler '{s.sampler}'", "Use search=tpe or search=random.")
    if str(s.imbalance).lower() not in ("auto", "true", "false"):
        raise UserError("search.imbalance", f"must be auto, true or false, got '{s.imbalance}'",
                        "Set search.imbalance=auto (the default), true or false.")
    if s.time_gap < 0:
        raise UserError("search.time_gap", f"must be >= 0 rows, got {s.time_gap}", "Set search.time_gap=0 (no gap).")
    if s.time_gap and not cfg.data.time_column:
        raise UserError("search.time_gap", "is set but data.time_column is not", "Set data.time_column, or remove it.")
    if not 0.0 <= cfg.task.coverage < 1.0:
        raise UserError("task.coverage", f"must be in (0, 1) (0 = off), got {cfg.task.coverage}",
                        "Set task.coverage=0.9 (for example).")
    if cfg.task.interval_scale not in ("auto", "constant", "normalised"):
        raise UserError("task.interval_scale", f"unknown scale '{cfg.task.interval_scale}'",
                        "Use auto, constant or normalised.")
    if cfg.task.calibration not in CALIBRATION_METHODS:
        raise UserError("task.calibration", f"unknown method '{cfg.task.calibration}'",
                        f"Use one of: {', '.join(CALIBRATION_METHODS)}.")
    if s.pruner not in ("median", "none"):
        raise UserError("search.pruner", f"unknown pruner '{s.pruner}'", "Use median or none.")
    if cfg.task.metric != "auto" and cfg.task.metric not in METRICS:
        raise UserError("task.metric", f"unknown metric '{cfg.task.metric}'",
                        f"Use one of: auto, {', '.join(METRICS)}.")

    for name, fld in CONSTRAINED.items():
        value = getattr(cfg.task, fld)
        if cfg.task.metric == name and not 0.0 < value <= 1.0:
            raise UserError(f"task.{fld}", f"metric {name} needs a minimum in (0, 1], got {value:g}",
                            f"Set task.{fld}=0.8 (for example).")
        if cfg.task.metric != name and value:
            raise UserError(f"task.{fld}", f"is set ({value:g}) but only metric {name} uses it",
                            f"Set task.metric={name}, or remove task.{fld}.")
    d = cfg.data
    if is_url(d.path):
        if d.tables:
            raise UserError("data.tables", "several tables are read from files, not from a database URL",
                            "Set each table's path to a CSV or Parquet file, or join them in data.query.")
        if bool(d.query) == bool(d.table):
            raise UserError("data.query",
                            "a database URL needs exactly one of data.query (a SELECT) or data.table"
                            + (", both are set" if d.query else ""),
                            "Set data.query='SELECT ...' or data.table=<name>.")
    elif d.query or d.table:
        raise UserError("data.query" if d.query else "data.table", f"is set but data.path '{d.path}' is not a "
                        "database URL", "Set data.path=sqlite:///file.db (or postgresql://user@host/db), or remove it.")
    if d.max_rows < 0:
        raise UserError("data.max_rows", f"must be >= 0, got {d.max_rows}", "Use 0 to size it to budget.memory_mb.")
    if d.group_column and d.group_column == d.time_column:
        raise UserError("data.group_column", f"'{d.group_column}' is also data.time_column",
                        "Declare a group key and a time column that are different columns.")
    if cfg.task.target and cfg.task.target in (d.group_column, d.time_column):
        raise UserError("data.group_column" if cfg.task.target == d.group_column else "data.time_column",
                        f"'{cfg.task.target}' is the target", "Declare another column.")
    if not cfg.task.target:
        raise UserError("task.target", "is empty", "Set task.target=<the column to predict>.")
    if cfg.export.format != "onnx":
        raise UserError("export.format", f"unknown format '{cfg.export.format}'", "Use export.format=onnx.")

    validate_tracking(cfg)
    for key in [*cfg.estimators.include, *cfg.estimators.exclude]:
        REGISTRY.get(key, field="estimators.include" if key in cfg.estimators.include else "estimators.exclude")
    if not [k for k in cfg.estimators.include if k not in cfg.estimators.exclude]:
        raise UserError("estimators.include", "no estimator family is left to search",
                        "Include at least one family (e.g. estimators.include=[hist_gradient_boosting]).")


def validate_tracking(cfg: RunConfig) -> None:
    import importlib.util

    t = cfg.tracking
    if t.backend not in ("none", "mlflow"):
        raise UserError("tracking.backend", f"unknown backend '{t.backend}'", "Use tracking=none or tracking=mlflow.")
    if t.backend == "mlflow" and importlib.util.find_spec("mlflow") is None:
        raise UserError("tracking", "tracking=mlflow needs the mlflow package, which is not installed",
                        "pip install 'automl[mlflow]', or set tracking=none.")
    if t.backend == "none" and t.register_as:
        raise UserError("tracking.register_as", "is set but tracking is none", "Add tracking=mlflow.")
    if not t.timeout_s > 0:
        raise UserError("tracking.timeout_s", f"must be > 0, got {t.timeout_s:g}", "Set tracking.timeout_s=30.")


def resolve_task(cfg: RunConfig, inferred: str, target: str, n_classes: int) -> tuple[str, str]:
    """(task type, metric) with the rules that need the data: metric fits task, declared type fits target."""
    declared = cfg.task.type.value if hasattr(cfg.task.type, "value") else str(cfg.task.type)
    if inferred == "constant":
        raise UserError(f"column '{target}'", "the target has a single value", "Choose a target that varies.")
    task = inferred if declared == "auto" else declared
    if declared == "binary" and n_classes != 2:
        raise UserError("task.type", f"binary needs 2 classes but '{target}' has {n_classes}",
                        "Set task.type=multiclass or auto.")
    if declared in ("binary", "multiclass") and n_classes > 1000:
        raise UserError("task.type", f"'{target}' has {n_classes} distinct values, too many for classification",
                        "Set task.type=regression or auto.")
    if declared == "multiclass" and n_classes < 3:
        task = "binary"  # two classes declared as multiclass: same model, binary metrics
    metric = DEFAULT_METRIC[task] if cfg.task.metric == "auto" else cfg.task.metric
    if task not in METRICS[metric].tasks:
        fits = [m for m, v in METRICS.items() if task in v.tasks]
        raise UserError("task.metric", f"'{metric}' does not fit a {task} task", f"Use one of: {', '.join(fits)}.")
    return task, metric
