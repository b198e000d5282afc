"""Typed config: one frozen dataclass per conf group, registered as Hydra structured-config schemas.

The dataclasses are not `frozen`: OmegaConf turns frozen dataclasses into read-only nodes that Hydra
cannot merge overrides into. Code below the CLI treats a RunConfig as immutable all the same.

Every option file in `conf/<group>/` starts with `defaults: [base_<group>, _self_]`, so a misspelled
key or a wrong type fails at compose time. Only the compose step (`automl/config/compose.py`, behind the
CLI and the Python API) and the CLI's Hydra task see a DictConfig; it becomes `RunConfig` through
`OmegaConf.to_object`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from automl.urls import is_url


class TaskType(str, Enum):
    auto = "auto"
    binary = "binary"
    multiclass = "multiclass"
    regression = "regression"


@dataclass
class TableConfig:
    path: str = MISSING  # CSV or Parquet file of one table of a relational dataset
    index: str = MISSING  # column with a unique id per row
    time_index: str = ""  # column with the time a row became known; "" = the table has no time


@dataclass
class RelationshipConfig:
    parent: str = MISSING  # "table.column": the parent table's index
    child: str = MISSING  # "table.column": the child table's column that refers to it


@dataclass
class DataConfig:
    path: str = MISSING  # CSV or Parquet file, a folder of Parquet files, or a database URL (SQLAlchemy)
    # a database URL reads data.query (a SELECT) or data.table (a table name) in chunks (automl/data/sql.py)
    query: str = ""
    table: str = ""
    name: str = "${stem:${data.path},${data.table}}"  # used in run-folder names
    id_columns: list[str] = field(default_factory=list)  # excluded from features, reported
    drop_columns: list[str] = field(default_factory=list)  # excluded from features (e.g. known leaks)
    # several tables (automl/data/relational.py): empty = the single table at data.path
    tables: dict[str, TableConfig] = field(default_factory=dict)
    relationships: list[RelationshipConfig] = field(default_factory=list)
    target_table: str = ""  # the table whose rows are predicted; its path is data.path
    aggregates: list[str] = field(default_factory=lambda: [
        "count", "sum", "mean", "max", "min", "std", "num_unique", "last"])  # featuretools primitives
    max_depth: int = 2  # featuretools DFS depth (2 = aggregates of aggregates, parent's aggregates)
    # floor each cutoff time to this pandas frequency ("1h", "1D"; "" = exact): featuretools computes once
    # per distinct cutoff, so rounding down is much faster and still never looks past a row's own time
    cutoff_round: str = ""
    max_rows: int = 0  # 0 = as many rows as budget.memory_mb allows; N caps the rows held (sampled from the whole file)
    # validation that matches deployment (automl/data/split.py): "" = rows are independent
    group_column: str = ""  # rows of one group (patient, customer, store) stay together in holdout and folds
    group_is_feature: bool = False  # the group column is not a feature unless this is true
    time_column: str = ""  # datetime or ordered numeric: latest rows are the holdout, folds chain forward


@dataclass
class TaskConfig:
    target: str = MISSING
    type: TaskType = TaskType.auto
    metric: str = "auto"  # auto: roc_auc (binary), log_loss (multiclass), rmse (regression)
    min_recall: float = 0.0  # metric=precision_at_recall: the recall the model must reach (0 < r <= 1)
    min_precision: float = 0.0  # metric=recall_at_precision: the precision the model must reach (0 < p <= 1)
    # binary label metrics (f1, balanced_accuracy, accuracy, *_at_*): choose the decision threshold on
    # out-of-fold predictions and put it in the graph's `label` output; false: label = most probable class
    tune_threshold: bool = True
    # conformal prediction (automl/conformal.py): 0 = off; e.g. 0.9 adds `interval` [N,2] (regression) or
    # `prediction_set` [N,C] (classification) to the graph, calibrated on out-of-fold predictions
    coverage: float = 0.0
    class_conditional: bool = False  # classification: coverage holds within each class (Mondrian)
    # regression intervals: auto = normalised by a difficulty model of |residual| where that narrows the mean
    # width on out-of-fold rows at equal coverage, else constant; or constant / normalised (always)
    interval_scale: str = "auto"
    # classifiers (automl/evaluation/calibration.py): auto = none / sigmoid / isotonic (binary; isotonic not
    # under ranking metrics) or none / temperature (multiclass), chosen on cross-fitted out-of-fold log loss and
    # applied inside the graph; or one of none, sigmoid, isotonic, temperature. Not with a tuned threshold
    calibration: str = "auto"


@dataclass
class BudgetConfig:
    time_s: float = 60.0  # wall clock for the whole run: profile, search, refit, export, reports
    n_trials: int = 0  # 0 = no cap; the time budget alone stops the search
    trial_time_s: float = 0.0  # 0 = derived from time_s; a trial running longer is killed (TIMEOUT)
    trial_memory_mb: int = 0  # 0 = derived from available memory; a trial using more is killed (MEMOUT)
    # the engine's peak memory (driver + trials); 0 = 60% of available memory. Data that does not fit is
    # scanned and the search runs on a sample sized to it (automl/memory.py, automl/data/large.py)
    memory_mb: int = 0
    # the final stage and the outputs in a process the command line forks before the engine imports anything
    # (automl/lean_fork.py): the largest single process of a small run ~35 MB smaller, for a per-process limit;
    # the tree as a whole ~130 MB larger and ~3 s more CPU, which a container's limit sees (benchmarks/RESULTS.md,
    # sessions 37-38). Command line only, not with budget.memory_mb or --multirun
    lean_final: bool = False


@dataclass
class SearchConfig:
    sampler: str = "tpe"  # tpe | random
    # how trials are scored: cv (k folds), holdout (one inner validation split, k times cheaper), or auto:
    # holdout on data too large for k-fold CV in the time budget (automl/stages/prepare.py validation_for)
    validation: str = "auto"
    cv_folds: int = 0  # 0 = auto: 5 folds up to 4000 search rows, 3 above (more trials within the budget)
    holdout: float = 0.2  # share of rows carved out first, never seen by the search
    n_startup_trials: int = 10  # TPE: random trials before the model kicks in (after the warm start)
    multivariate: bool = True
    # median | none: prune a trial on its running mean over CV folds, or (one inner split) on a first fit on a
    # quarter of the training rows (automl/search/rung.py)
    pruner: str = "median"
    space_dir: str = ""  # "" = the search_spaces/ shipped with the engine
    study_name: str = "automl"
    n_workers: int = 0  # local worker processes on one study (each trial uses cores / n_workers threads); 0 = auto
    storage: str = ""  # "" = journal file in the run folder; or a database URL (postgresql://..., sqlite:///...)
    heartbeat_s: int = 10  # database storage: a trial whose worker stops beating for 3x this is failed and retried once
    # classification: search resampling and class weights (search_spaces/imbalance.yaml). auto: for label
    # metrics (f1, ...), and for other metrics when majority/minority >= 3 except log_loss, whose priors
    # resampling would distort; true / false: always / never
    imbalance: str = "auto"
    # pin search-space parameters: "family.param" (or "pre.param", "imb.param") -> value; a pinned parameter
    # is not sampled, its value is recorded in every trial (leaderboard params, model card). Nested
    # {family: {param: value}} is the same, so `search.fixed.lightgbm.num_leaves=15,63` sweeps it
    fixed: dict[str, Any] = field(default_factory=dict)
    # after the search, the best N trials are cross-validated again on fresh folds and ranked by the mean of
    # both estimates (against the winner's curse); -1 = auto: 5 on small data (<= 4000 search rows) or one inner split
    rescore: int = -1
    # after ensemble selection, a level-2 stacker over the ensemble's members (or the best few trials) ships where
    # it beats the Caruana weights on nested OOF scores (automl/stages/stack_choice.py); false: never
    stacking: bool = True
    time_gap: int = 0  # data.time_column: rows left out between each fold's training rows and its validation block
    # what the study optimises: [metric] (one objective), or the metric with latency (the trial graph's single-row
    # p50) and/or size (its MB): a multi-objective study whose Pareto front the leaderboard marks; pruning is off
    # then (Optuna's pruners take one objective). `metric` may also be spelt as task.metric's name
    objectives: list[str] = field(default_factory=lambda: ["metric"])


@dataclass
class EstimatorsConfig:
    include: list[str] = field(
        default_factory=lambda: [
            "baseline", "linear", "random_forest", "extra_trees",
            "hist_gradient_boosting", "catboost", "lightgbm", "xgboost", "knn", "mlp",
        ]
    )
    exclude: list[str] = field(default_factory=list)


@dataclass
class ExportConfig:
    format: str = "onnx"  # onnx
    parity_tol: float = 1e-5  # absolute on probabilities, relative on regression outputs
    parity_rows: int = 2000  # holdout rows checked (plus the same rows with missing values / unseen categories)
    # true: after the holdout is scored, the shipped graph is the same pipeline refit on all rows
    # (holdout included); false: the shipped graph is exactly the model the holdout scored
    refit_full: bool = True
    # lighter graphs written beside model.onnx where they hold up (automl/export/variants.py): int8, float16
    variants: list[str] = field(default_factory=list)
    # a variant is kept when its outputs stay within this of the shipped graph's; 0 = export.parity_tol
    variant_tol: float = 0.0


@dataclass
class TrackingConfig:
    backend: str = "none"  # none | mlflow (extra automl[mlflow]; automl/tracking/mlflow_tracking.py)
    uri: str = ""  # MLflow tracking URI (http://host:5000, sqlite:///mlflow.db, ...); "" = MLFLOW_TRACKING_URI
    experiment: str = "automl"  # MLflow experiment name (created if missing)
    register_as: str = ""  # a name: the model is also registered in MLflow's Model Registry under it
    timeout_s: float = 30.0  # per HTTP request to the server; a server that does not answer fails tracking only


@dataclass
class ConstraintsConfig:
    """What the shipped graph must meet, measured on the exported model.onnx (automl/export/measure.py); 0 = off.
    The final stage ships the best-ranked candidate that meets every limit, falling down the leaderboard."""
    max_latency_ms: float = 0.0  # single-row p50 in onnxruntime, one thread, after warm-up
    max_model_mb: float = 0.0  # size of model.onnx in MB (10^6 bytes)
    max_batch_ms_per_1k: float = 0.0  # one call on 1000 rows, one thread, in ms


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    estimators: EstimatorsConfig = field(default_factory=EstimatorsConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    constraints: ConstraintsConfig = field(default_factory=ConstraintsConfig)
    seed: int = 0


GROUPS: dict[str, type] = {
    "data": DataConfig,
    "task": TaskConfig,
    "budget": BudgetConfig,
    "search": SearchConfig,
    "estimators": EstimatorsConfig,
    "export": ExportConfig,
    "tracking": TrackingConfig,
    "constraints": ConstraintsConfig,
}


def demo_path(name: str = "penguins.csv") -> str:
    return str(Path(__file__).resolve().parent.parent / "demo" / name)


def data_name(path: str, table: str = "") -> str:
    """A run-folder name for the data: the file's stem; for a database URL the table or the database
    name (never a part of the URL that could hold a password)."""
    if is_url(path):
        db = str(path).split("?", 1)[0].rsplit("/", 1)[-1] if str(path).count("/") >= 3 else ""
        return str(table) or Path(db).stem or "sql"
    return Path(str(path)).stem or "data"


def register_configs() -> None:
    """Store the schemas and resolvers with Hydra (idempotent)."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("stem"):
        OmegaConf.register_new_resolver("stem", data_name)
    if not OmegaConf.has_resolver("automl_demo"):
        OmegaConf.register_new_resolver("automl_demo", demo_path)
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=RunConfig)
    for group, node in GROUPS.items():
        cs.store(group=group, name=f"base_{group}", node=node)
