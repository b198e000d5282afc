"""The trial loop in parts: its stop conditions, the trial line's best with several workers, and the
forked workers' own trial callback."""
from __future__ import annotations

import itertools
import os
import time

import pytest

from automl.data.roles import infer_schema, to_model_frame
from automl.data.split import cv_folds
from automl.data.target import prepare_target
from automl.evaluation.metrics import get_metric
from automl.search import coordination as co
from automl.search import loop
from automl.search.budget import Budget
from automl.search.objective import SearchData
from automl.search.parallel import run_workers
from automl.search.study import make_study, warm_start

from ..conftest import tiny_frame


def _data(metric: str = "roc_auc") -> SearchData:
    df = tiny_frame("binary", n=60)
    schema = infer_schema(df, "y", [], [])
    y, _ = prepare_target(df, "y", "binary")
    return SearchData(X=to_model_frame(df, schema), y=y, folds=cv_folds(y, "binary", 3, 0), schema=schema,
                      missing_numeric=["x2"], task="binary", metric=get_metric(metric), n_classes=2, seed=0,
                      families=["baseline", "linear"], n_jobs=1)


def _study(tmp_path, data: SearchData, name: str = "t"):
    return make_study(tmp_path / "study.journal", name, data.metric.direction, "tpe", 0, 10, True, "median")


def test_stop_reasons_in_order(tmp_path, monkeypatch):
    from automl.search import supervisor

    data = _data()
    study = _study(tmp_path, data)
    state = loop.start_state(study, data, Budget(start=time.time(), time_s=60.0))
    budget = Budget(start=time.time(), time_s=60.0, n_trials=1)
    assert loop.stop_reason(study, budget, state, tickets=False, left=30.0) == ""
    study.tell(study.ask(), 0.5)  # a trial of any worker counts against the cap
    assert loop.stop_reason(study, budget, state, tickets=False, left=30.0) == "trial budget reached (1)"
    assert loop.stop_reason(study, budget, state, tickets=True, left=30.0) == ""  # tickets count instead
    assert loop.stop_reason(study, budget, state, tickets=True, left=0.5).startswith("time budget")
    study.set_user_attr(co.PHASE_ATTR, "final")
    assert loop.stop_reason(study, budget, state, tickets=True, left=30.0) == "the driver ended the search"
    monkeypatch.setitem(supervisor._stop, "requested", True)
    assert loop.stop_reason(study, budget, state, tickets=True, left=30.0) == "interrupted"


@pytest.mark.parametrize("metric,other_best", [("roc_auc", 0.987654), ("log_loss", 0.012345)])
def test_every_trial_line_shows_the_studys_best(tmp_path, metric, other_best):
    """Two workers on one study: each trial line showed that worker's own best, so the run's log went
    down and up (0.0361, 0.0392, 0.0361, ...). Here another worker (a second handle on the journal)
    finishes the study's best trial after this worker's first trial: every later line shows it."""
    data = _data(metric)
    study = _study(tmp_path, data)
    warm_start(study, data)
    other = _study(tmp_path, data)  # another process's handle on the same journal file
    lines: list[dict] = []

    def on_trial(d: dict) -> None:
        lines.append(d)
        if len(lines) == 1:
            other.tell(other.ask(), other_best)

    loop.run_search(study, data, Budget(start=time.time(), time_s=60.0, n_trials=4, trial_time_s=20.0),
                    on_trial=on_trial)
    best = [d["best"] for d in lines]
    assert len(best) == 3 and all(b is not None for b in best)
    sign = 1 if data.metric.greater_is_better else -1
    assert all(sign * a <= sign * b for a, b in itertools.pairwise(best)), best  # only improves
    assert best[1:] == [other_best, other_best] == [study.best_value] * 2, best


def test_forked_workers_report_through_their_own_callback(tmp_path):
    """The driver's callback (the live display) stays in the driver; the workers' lines go through
    on_worker_trial, and every line's best is the study's, in the metric's direction."""
    data = _data()
    make = lambda seed_offset=0: _study(tmp_path, data)  # noqa: E731
    study = make()
    warm_start(study, data, limit=4)
    co.enqueue_tickets(study, 4)
    out = tmp_path / "lines.txt"

    def write(d: dict) -> None:
        with open(out, "a") as f:
            f.write(f"{os.getpid()} {d['number']} {d['best']}\n")

    driver: list[dict] = []
    run_workers(2, make, data, Budget(start=time.time(), time_s=60.0, n_trials=4, trial_time_s=20.0), None,
                driver.append, True, on_worker_trial=write)
    rows = [line.split() for line in out.read_text().splitlines()] if out.exists() else []
    assert all(int(pid) != os.getpid() for pid, _, _ in rows)
    assert len(driver) + len(rows) == 4
    values = {t.number: t.value for t in study.trials}
    for number, best in [(d["number"], d["best"]) for d in driver] + [(int(n), float(b)) for _, n, b in rows]:
        assert (values[number] is None or best >= values[number]) and best <= study.best_value


def test_trials_are_exported_only_where_graphs_are_measured(tmp_path):
    """By default no trial is exported: the final stage exports and gates what ships, and prices a trial's
    export by its family's measured ratio of export to fit time. With constraints on (measure_graphs) the first
    of each family is exported (its export prices the family's), and so is a trial that could be shipped or join
    the ensemble's pool (best 8, or its family's best 2), so the sampler's constraint values are its own graph's;
    in a multi-objective study every trial is."""
    from automl.estimators import REGISTRY

    state = loop.start_state(_study(tmp_path, _data()), _data(), Budget(start=time.time(), time_s=60.0))
    assert not loop.worth_exporting(state, "hgb", 0.5)  # not even the first of its family
    assert loop.worth_exporting(state, "hgb", 0.5, True)  # graphs measured: the first of its family
    assert loop.estimated_export_s(state, "lightgbm", 2.0) == pytest.approx(2.0 * REGISTRY.get("lightgbm").export_ratio)
    assert loop.estimated_export_s(state, "hgb", 2.0) == pytest.approx(1.0)  # a family the registry lacks: 0.5
    state.exported["hgb"] = [2.0]
    state.scored = [(0.9 - 0.01 * i, "hgb") for i in range(10)]
    assert not loop.worth_exporting(state, "hgb", 0.95)  # the best so far: the final stage exports it if shipped
    assert not loop.worth_exporting(state, "hgb", 0.5, True)  # 11th of 11, 3rd of its family at best
    assert loop.worth_exporting(state, "hgb", 0.885, True)  # within the best 8
    state.exported["linear"] = [0.1]
    state.scored.append((0.3, "linear"))
    assert loop.worth_exporting(state, "linear", 0.2, True)  # its family's best 2
    state.scored.append((0.4, "linear"))
    assert not loop.worth_exporting(state, "linear", 0.2, True)
    state.objectives = ("metric", "latency")
    assert loop.worth_exporting(state, "linear", 0.2)  # multi-objective: every trial's graph is measured
    assert loop.estimated_export_s(state, "hgb", 1.5) == pytest.approx(3.0)  # the run's own exports first


def test_graphs_are_measured_when_the_refit_is_held_to_a_memory_limit():
    """Under a memory limit the final refit is held to, the candidates are exported inside their trials, so
    the peaks the final stage prices their refits by include the export (search_data's memory_bound)."""
    from automl.config.compose import compose, to_run_config
    from automl.stages.prepare import search_data

    d = _data()
    cfg = to_run_config(compose(["data.path=x.csv", "task.target=y"]))

    def measured(memory_bound: bool) -> bool:
        return search_data(cfg, d.X, d.y, d.schema, "binary", d.metric, 2, 3, 1,
                           memory_bound=memory_bound).measure_graphs

    assert measured(True) and not measured(False)


def test_a_search_exports_no_trial_unless_graphs_are_measured(tmp_path):
    """By default every trial's export is priced, none made; with graphs measured (constraints on) the first of
    each family is exported, and the rest that could not ship are priced from their family's."""
    import dataclasses

    for measure in (False, True):
        data = dataclasses.replace(_data(), measure_graphs=measure)
        (tmp_path / str(measure)).mkdir()
        study = _study(tmp_path / str(measure), data)
        warm_start(study, data)
        loop.run_search(study, data, Budget(start=time.time(), time_s=300.0, n_trials=14))
        done = [t for t in study.trials if t.state.name == "COMPLETE"]
        exported = [t for t in done if not t.user_attrs.get("export_estimated")]
        skipped = [t for t in done if t.user_attrs.get("export_estimated")]
        assert len(done) >= 12 and skipped, [t.user_attrs for t in done]
        assert all("onnx_bytes" in t.user_attrs for t in exported)
        assert all("onnx_bytes" not in t.user_attrs and t.user_attrs["export_s"] > 0 for t in skipped)
        if measure:
            assert {t.params["family"] for t in exported} == {t.params["family"] for t in done}
        else:
            assert not exported, [t.user_attrs for t in exported]
