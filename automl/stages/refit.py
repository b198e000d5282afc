"""The final stage: refit the chosen pipeline on all search rows, score it once on the holdout,
export it as one ONNX graph and gate it on parity. Runs in a supervised child like a trial.

With `refit_full` (export.refit_full, FLAML's retrain_full / AutoGluon's refit_full) the holdout
score comes from the pipeline refit on the search rows, and the shipped graph is the same
configuration refit on all rows, holdout included.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from automl.config.schema import TaskConfig
from automl.ensemble import WeightedEnsemble
from automl.errors import ParityError
from automl.evaluation.calibration import Calibrated, Calibrator, choose, reliability
from automl.evaluation.conformal import Conformal, evaluate
from automl.evaluation.metrics import holdout_metrics, per_class_report
from automl.export.contract import feeds_from_frame
from automl.export.onnx import (
    check_parity,
    class_labels,
    export_onnx,
    parity_frame,
    python_outputs,
    run_in_chunks,
    session,
)
from automl.export.trim import trim
from automl.export.uncertainty import add_conformal, check_conformal_parity, difficulty_of, python_output
from automl.features.build import describe
from automl.memory import release_freed
from automl.reporting.explain import permutation_importance
from automl.search import objective as obj
from automl.stacking import StackedEnsemble, Stacker
from automl.stages import checkpoint
from automl.stages.difficulty import Residuals, fit_intervals


@dataclass(frozen=True)
class Extras:
    """What the final refit needs beyond the plan: the probability calibrator (task.calibration), the
    conformal calibration (task.coverage) and the holdout rows' groups (data.group_column: a refit on all
    rows cross-fits target encoding on groups)."""
    conformal: Conformal | None = None
    hold_groups: np.ndarray | None = None
    calibrator: Calibrator | None = None
    calibration: dict[str, Any] | None = None  # the choice: cross-fitted OOF log loss per method, or why none
    # regression intervals: the OOF residuals a difficulty model is cross-fitted on in the final child
    # (task.interval_scale auto / normalised); `conformal` is then the constant-width fallback
    residuals: Residuals | None = None
    interval_scale: str = "constant"
    trim_tol: float | None = None  # export.variants=[trim]: the holdout score a trimmed ensemble may give up
    stacker: Stacker | None = None  # a stacked ensemble: the level-2 model over the refit members' outputs
    # the parity gate and holdout scoring through onnxruntime: in a process of their own once the refit's has
    # exited (automl/stages/gate.py), unless intervals or a trimmed variant need the fitted pipeline
    gate_apart: bool = False
    # with gate_apart and a refit on all rows: the model the holdout scored is sent to the parent, gate-ready,
    # before that refit starts (automl/stages/checkpoint.py)
    checkpoint: bool = False


RANKING = ("roc_auc", "average_precision")
CALIBRATION_PARTS = 5


def calibration_parts(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold

    return list(KFold(n_splits=min(CALIBRATION_PARTS, max(n, 2)), shuffle=True, random_state=seed)
                .split(np.zeros(n)))


def extras_for(data: obj.SearchData, oofs: list[np.ndarray] | None, weights: list[float], task: TaskConfig,
               hold_groups: np.ndarray | None, floor: float = 0.0, threshold: float | None = None) -> Extras:
    """`oofs`: the plan members' OOF predictions on `data.scored` rows (None when a file is missing)."""
    if not oofs:
        return Extras(hold_groups=hold_groups)
    blend = sum(w * o.astype(np.float64) for o, w in zip(oofs, weights, strict=True))
    assert isinstance(blend, np.ndarray)
    cal: Calibrator | None = None
    report: dict[str, Any] | None = None
    if data.task != "regression":
        blend = (1 - floor) * blend + floor / blend.shape[1]  # what the ensemble's graph outputs
        if threshold is not None:
            report = {"method": "none", "why": "the decision threshold was tuned on the uncalibrated probabilities"}
        elif task.calibration != "none":
            folds = [np.searchsorted(data.scored, va) for _, va in data.folds]
            if len(folds) < 2:  # one inner split: the calibrators are cross-fitted on 5 parts of its rows
                folds = [part for _, part in calibration_parts(len(data.scored), data.seed)]
            choice = choose(task.calibration, data.oof_y, blend, folds, data.metric.name not in RANKING,
                            sharpen=data.metric.name != "log_loss", past_only=data.structure.order is not None)
            cal = choice.calibrator
            assert choice.calibrated_oof is not None
            report = {**cal.to_json(), "oof_log_loss": choice.oof_log_loss,
                      "oof_before": reliability(data.oof_y, blend),
                      "oof_after": reliability(data.oof_y, choice.calibrated_oof)}
            blend = choice.calibrated_oof.astype(np.float64)  # conformal scores on what the graph outputs
    conf = Conformal.fit(data.task, data.oof_y, blend, task.coverage, task.class_conditional) if task.coverage else None
    res = None
    if conf is not None and data.task == "regression" and task.interval_scale != "constant":
        res = Residuals(data.X.iloc[data.scored].reset_index(drop=True), data.oof_y, blend,
                        [np.searchsorted(data.scored, va) for _, va in data.folds],
                        None if data.structure.groups is None else data.structure.groups[data.scored],
                        past_only=data.structure.order is not None)
    return Extras(conf, hold_groups, cal if cal is not None and cal.method != "none" else None, report, res,
                  task.interval_scale)


def refit_export(conn: Any, data: obj.SearchData, members: list[tuple[obj.Candidate, float]], X_hold: pd.DataFrame,
                 y_hold: np.ndarray, classes: list[Any] | None, meta: dict[str, str], parity_tol: float,
                 parity_rows: int, floor: float = 0.0, refit_full: bool = False,
                 explain_s: float = 0.0, threshold: float | None = None,
                 extras: Extras | None = None) -> dict[str, Any]:
    extras = extras or Extras()
    conf = extras.conformal
    apart = extras.gate_apart and conf is None and extras.trim_tol is None
    groups = data.structure.groups
    difficulty: Any = None  # normalised intervals: the fitted difficulty pipeline (automl/stages/difficulty.py)
    timings: dict[str, float] = {}
    if conf is not None and extras.residuals is not None:
        t = time.perf_counter()
        conf, difficulty = fit_intervals(data, extras.residuals, conf.coverage, extras.interval_scale)
        timings["difficulty_s"] = time.perf_counter() - t

    def fit(X: pd.DataFrame, y: np.ndarray) -> Any:
        g = groups
        if g is not None and len(X) > len(g):  # refit on all rows: the holdout's groups after the search rows'
            g = None if extras.hold_groups is None else np.concatenate([g, extras.hold_groups])
        pipes = [obj.build(data, cand, groups=g).fit(X, y) for cand, _ in members]
        fitted = (StackedEnsemble(pipes, extras.stacker, data.task, floor=floor) if extras.stacker is not None
                  else pipes[0] if len(pipes) == 1 and not floor
                  else WeightedEnsemble(pipes, [w for _, w in members], data.task, floor=floor))
        return Calibrated(fitted, extras.calibrator) if extras.calibrator is not None else fitted

    t = time.perf_counter()
    pipe = fit(data.X, data.y)
    timings["refit_s"] = time.perf_counter() - t
    out: dict[str, Any] = {}
    # the model the holdout scores, kept beside the refit on all rows only for trim (which chooses its rounds on it)
    held = pipe if extras.trim_tol is not None else None
    if len(y_hold):
        t = time.perf_counter()
        pred = obj.predict(pipe, X_hold, data.task, data.n_classes)
        timings["holdout_predict_s"] = time.perf_counter() - t
        out["holdout_score"] = data.metric(y_hold, pred, data.n_classes, threshold)
        out["holdout_metrics"] = holdout_metrics(data.task, y_hold, pred, data.n_classes, threshold, data.metric)
        if data.task != "regression":
            out["holdout_per_class"] = per_class_report(y_hold, pred, classes, threshold)
        out["holdout_pred"] = pred.astype(np.float32)
        if conf is not None:
            out["conformal_holdout"] = evaluate(conf, y_hold,
                                                python_output(conf, pred, difficulty_of(difficulty, X_hold)))
        if extras.calibration is not None:
            raw = obj.predict(pipe.inner, X_hold, data.task, data.n_classes) if isinstance(pipe, Calibrated) else pred
            out["calibration"] = {**extras.calibration, "holdout_before": reliability(y_hold, raw),
                                  "holdout_after": reliability(y_hold, pred)}
        if explain_s > 0:  # of the holdout-scored pipeline: the refit_full one has seen the holdout
            scored = pipe
            out["permutation_importance"] = permutation_importance(
                lambda X: obj.predict(scored, X, data.task, data.n_classes), X_hold, y_hold,
                lambda y, p: data.metric(y, p, data.n_classes), data.metric.greater_is_better, data.seed,
                time_limit_s=explain_s)
            del scored  # the refit on all rows replaces this model below
    if refit_full and len(y_hold):
        # score the holdout through onnxruntime too, with the very model that was scored, before refitting
        t = time.perf_counter()
        graph = export_onnx(pipe, data.schema, data.task, classes, meta, threshold, check=not apart)
        if apart:  # scored by the gate's process (its bytes are ~5x smaller than the graph's Python copy)
            out["holdout_graph"] = graph.SerializeToString()
            if extras.checkpoint and conn is not None:
                out["holdout_graph"] = send_checkpoint(conn, out, pipe, graph, data, X_hold, parity_rows, threshold,
                                                       len(members), timings)
        else:
            out["holdout_score_onnx"] = onnx_score(graph, data, X_hold, y_hold, threshold, len(data.y))
        del graph  # a deep forest's graph: not held while the refit on all rows is fitted and exported
        release_freed()  # nor the heap its Python copy left, which glibc would keep under the refit below
        timings["holdout_export_s" if apart else "holdout_onnx_s"] = time.perf_counter() - t - timings.get(
            "checkpoint_s", 0.0)
        t = time.perf_counter()
        pipe = fit(pd.concat([data.X, X_hold], ignore_index=True), np.concatenate([data.y, y_hold]))
        timings["refit_full_s"] = time.perf_counter() - t
        out["refit_full_rows"] = len(data.y) + len(y_hold)
    t = time.perf_counter()
    # apart, onnx's checker runs in the gate's process, before its onnxruntime session: here it came on top of
    # the fitted pipeline and the graph's Python copy, at the refit process's peak (benchmarks/RESULTS.md, s47)
    model = export_onnx(pipe, data.schema, data.task, classes, meta, threshold, check=not apart)
    timings["export_s"] = time.perf_counter() - t
    check_rows = gate_rows(X_hold, data, parity_rows)
    if apart:
        t = time.perf_counter()
        out["gate"] = pending(pipe, model, check_rows, data, len(data.y) + (len(y_hold) if refit_full else 0),
                              len(members))
        timings["parity_python_s"] = time.perf_counter() - t
        out.update(model=model.SerializeToString(), timings=timings)
        return described(out, pipe, threshold)
    t = time.perf_counter()
    try:
        parity = check_parity(model, pipe, check_rows, data.schema, data.task, parity_tol, data.seed, threshold,
                              fit_rows=len(data.y) + (len(y_hold) if refit_full else 0))
        if conf is not None:
            fit_rows = len(data.y) + (len(y_hold) if refit_full else 0)
            model, parity["conformal"], shipped = attach_conformal(model, pipe, check_rows, data, conf, difficulty,
                                                                   extras.conformal, parity_tol, fit_rows)
            out["conformal"] = shipped.to_json()
            if shipped is not conf:  # the difficulty model failed its gate: the constant width ships
                out["conformal"]["normalised_refused"] = parity["conformal"].pop("normalised_refused")
                if len(y_hold):
                    out["conformal_holdout"] = evaluate(shipped, y_hold, python_output(shipped, out["holdout_pred"]))
    except ParityError as e:
        return {**out, "parity_error": str(e), "timings": timings,
                "parity_failed_members": failing_members(pipe, data, classes, meta, threshold, check_rows, parity_tol,
                                                         len(data.y) + (len(y_hold) if refit_full else 0))}
    timings["parity_s"] = time.perf_counter() - t
    if len(y_hold) and not refit_full:  # the shipped graph's own holdout score, through the ONNX contract alone
        out["holdout_score_onnx"] = onnx_score(model, data, X_hold, y_hold, threshold, len(data.y))
    out.update(model=model.SerializeToString(), parity=parity, timings=timings)
    described(out, pipe, threshold)
    if extras.trim_tol is not None:
        out["trim"] = trim_variant(held, pipe, data, X_hold, y_hold, threshold, classes, meta, extras.trim_tol,
                                   lambda m, p: check_parity(m, p, check_rows, data.schema, data.task, parity_tol,
                                                             data.seed, threshold, fit_rows=len(data.y) + (
                                                                 len(y_hold) if refit_full else 0)),
                                   with_intervals=conf is not None, time_limit_s=max(0.5, explain_s))
    return out


def send_checkpoint(conn: Any, out: dict[str, Any], pipe: Any, graph: Any, data: obj.SearchData,
                    X_hold: pd.DataFrame, parity_rows: int, threshold: float | None, members: int,
                    timings: dict[str, float]) -> str:
    """The model the holdout scored (`pipe`, exported as `graph`) sent to the parent as the gate's process takes
    it, before the refit on all rows: what ships if that refit is stopped (automl/stages/checkpoint.py)."""
    t = time.perf_counter()
    gate = pending(pipe, graph, gate_rows(X_hold, data, parity_rows), data, len(data.y), members)
    value = described({k: v for k, v in out.items() if k != "holdout_graph"}, pipe, threshold)
    value.update(model=out["holdout_graph"], timings={**timings, "checkpoint_s": time.perf_counter() - t}, gate=gate)
    sent = checkpoint.send(conn, value)
    timings["checkpoint_s"] = time.perf_counter() - t
    return sent


def pending(pipe: Any, graph: Any, rows: pd.DataFrame, data: obj.SearchData, fit_rows: int, members: int) -> Pending:
    """What the gate's process needs of `pipe` exported as `graph`: its outputs on parity_frame(`rows`), the
    graph's class labels, the rows it was fitted on."""
    python = python_outputs(pipe, parity_frame(rows, data.schema, data.seed), data.task)
    return Pending(python, None if data.task == "regression" else class_labels(graph), fit_rows, members)


def gate_rows(X_hold: pd.DataFrame, data: obj.SearchData, parity_rows: int) -> pd.DataFrame:
    """The rows the parity gate checks (before parity_frame adds their stressed copies): the holdout's first
    `parity_rows`, else the search rows'. The refit's process and the gate's (automl/stages/gate.py) must agree."""
    return (X_hold if len(X_hold) else data.X).iloc[:parity_rows]


@dataclass(frozen=True)
class Pending:
    """What the gate's process needs of the refit's (automl/stages/gate.py): the pipeline's outputs on the
    parity rows, the graph's class labels (None for regression), the rows it was fitted on (how
    onnxruntime's runs are sliced) and how many members it combines."""
    python: np.ndarray
    labels: np.ndarray | None
    fit_rows: int
    members: int = 1


def described(out: dict[str, Any], pipe: Any, threshold: float | None) -> dict[str, Any]:
    """`out` with what the card says of the fitted pipeline: its estimators and synthesised features."""
    inner = pipe.inner if isinstance(pipe, Calibrated) else pipe
    members_fitted = inner.members if isinstance(inner, (WeightedEnsemble, StackedEnsemble)) else [inner]
    out["estimators"] = [repr(p.steps[-1][1])[:300] for p in members_fitted]
    out["decision_threshold"] = threshold
    out["synthesised_features"] = [describe(p) for p in members_fitted]
    return out


def trim_variant(held: Any, pipe: Any, data: obj.SearchData, X_hold: pd.DataFrame, y_hold: np.ndarray,
                 threshold: float | None, classes: list[Any] | None, meta: dict[str, str], tol: float,
                 parity: Any, with_intervals: bool, time_limit_s: float) -> dict[str, Any]:
    """export.variants=[trim] (automl/export/trim.py): rounds chosen on the holdout with `held`, the shipped
    `pipe` trimmed alike, exported and gated against the trimmed Python model. The choice gets the explanation's
    allowance (`time_limit_s`): the final stage prices the refit and export, not this offer."""
    if with_intervals or not len(y_hold):
        return {"kind": "trim", "why": "task.coverage: the intervals are calibrated for the full model"
                if with_intervals else "no holdout rows to choose the rounds on (search.holdout=0)"}

    def score(p: Any) -> float:
        return data.metric(y_hold, obj.predict(p, X_hold, data.task, data.n_classes), data.n_classes, threshold)

    return trim(held, pipe, score, data.metric.greater_is_better, tol,
                lambda p: export_onnx(p, data.schema, data.task, classes, meta, threshold), parity, time_limit_s)


def attach_conformal(model: Any, pipe: Any, rows: pd.DataFrame, data: obj.SearchData, conf: Conformal,
                     difficulty: Any, constant: Conformal | None, tol: float,
                     fit_rows: int) -> tuple[Any, dict[str, Any], Conformal]:
    """The graph with its conformal output, that output's parity report, and the calibration shipped: normalised
    intervals whose difficulty model fails the parity gate give way to the constant width (`constant`) rather
    than cost the model, and the report says why."""
    refused = ""
    if difficulty is not None and conf.scale == "normalised":
        try:
            full = add_conformal(model, conf, export_onnx(difficulty, data.schema, "regression", None, {}))
            return full, check_conformal_parity(full, pipe, rows, data.schema, conf, tol, fit_rows, difficulty), conf
        except ParityError as e:
            refused = str(e)
            assert constant is not None  # extras_for computes the constant width whenever it passes residuals
            conf = constant
    full = add_conformal(model, conf)
    report = check_conformal_parity(full, pipe, rows, data.schema, conf, tol, fit_rows)
    if refused:
        report["normalised_refused"] = refused
    return full, report, conf


def failing_members(pipe: Any, data: obj.SearchData, classes: list[Any] | None, meta: dict[str, str],
                    threshold: float | None, rows: pd.DataFrame, tol: float, fit_rows: int) -> list[int]:
    """Which members of an ensemble that failed the parity gate fail it on their own (indices), so the final
    stage can select an ensemble without them rather than give the ensemble up ([] for a single model)."""
    if isinstance(pipe, Calibrated):  # the calibrator acts on the blend: each member is checked raw
        pipe = pipe.inner
    if not isinstance(pipe, (WeightedEnsemble, StackedEnsemble)) or len(pipe.members) < 2:
        return []
    bad = []
    for i, member in enumerate(pipe.members):
        try:
            model = export_onnx(member, data.schema, data.task, classes, meta, threshold)
            check_parity(model, member, rows, data.schema, data.task, tol, data.seed, threshold, fit_rows=fit_rows)
        except ParityError:
            bad.append(i)
    return bad


def onnx_score(model: Any, data: obj.SearchData, X: pd.DataFrame, y: np.ndarray,
                threshold: float | None = None, fit_rows: int = 0) -> float:
    """The metric on rows scored by onnxruntime through the ONNX contract alone (in slices sized to the
    model's training rows: see run_in_chunks). `model`: a ModelProto or its bytes."""
    sess = session(model if isinstance(model, bytes) else model.SerializeToString())
    res = run_in_chunks(sess, feeds_from_frame(X, data.schema.to_json()), fit_rows)
    pred = res["label"] if data.task == "regression" else res["probabilities"]
    return data.metric(y, np.asarray(pred, dtype=np.float64), data.n_classes, threshold)
