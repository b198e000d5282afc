"""The e2e runs, shared by the modules that inspect them (one real run per task per session)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.cli_runner import DATA, run_cli
from tests.xdist_share import alone

CASES = {
    "binary": ("medpar_600.csv", "died", "roc_auc"),
    "multiclass": ("penguins.csv", "species", "log_loss"),
    "regression": ("slid_wages_600.csv", "wages", "rmse"),
}
BUDGET = 20
# The binary run is ended by its clock (the one e2e run of the default suite that uses its whole budget, so
# test_run_folder_and_onnx_contract's wall-time check binds); the other two are ended by a trial cap well
# inside the same budget (about 10 s each instead of 17, the same stages: rescore, ensemble, report)
TRIAL_CAP = {"binary": [], "multiclass": ["budget.n_trials=6"], "regression": ["budget.n_trials=6"]}


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> dict[str, tuple[Path, float]]:
    out = {}
    # alone under xdist: the wall time, the budget used and report_s of these runs are checked against limits
    # (tests/e2e/test_run.py, test_report.py), not against the other worker's load
    with alone():
        for task, (file, target, metric) in CASES.items():
            run = tmp_path_factory.mktemp(task) / "run"
            t = time.monotonic()
            p = run_cli(f"data.path={DATA / file}", f"task.target={target}", f"task.metric={metric}",
                        f"budget.time_s={BUDGET}", *TRIAL_CAP[task], "search.cv_folds=3", f"hydra.run.dir={run}",
                        timeout=BUDGET * 4)
            assert p.returncode == 0, p.stderr[-3000:]
            out[task] = (run, time.monotonic() - t)
    return out
