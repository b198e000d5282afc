"""The driver keeps what only one late step needs out of its own memory (issue 17): report.html's matplotlib and the
shipped graph's latency and deployment measurements (onnxruntime sessions) run in a forked child, so their
~50 MB each die with it instead of setting the driver's peak (on small data the driver is the largest process
of the run, which is what GNU time's %M reports). The run's files are the same: the report is written and the
manifest carries the measurements. With budget.lean_final=true the final stage itself runs in a child forked
before the engine's imports (automl/lean_fork.py), so the driver never loads the export stack either; by default
it runs in the driver, which ships the same files. featuretools, which the space's synthesis choices need, is asked
once in a child before the search forks (search/enumerate_ahead.py): no process of the run but that child holds it;
with two workers it was imported into the driver before them."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.cli_runner import DATA, ROOT

SCRIPT = """
import json, sys
from automl.cli import main
sys.argv = ["automl", *sys.argv[1:]]
code = 0
try:
    main()
except SystemExit as e:
    code = e.code
print("DRIVER " + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


@pytest.mark.slow
@pytest.mark.ci
@pytest.mark.parametrize("lean_final", [True, False])
def test_report_and_measurements_leave_the_driver_lean(tmp_path, lean_final: bool):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, "-c", SCRIPT, f"data.path={DATA / 'aids_600.csv'}", "task.target=status",
                        "budget.time_s=20", "budget.n_trials=3", "search.n_workers=2",
                        "estimators.include=[linear,hist_gradient_boosting]",
                        f"budget.lean_final={str(lean_final).lower()}", f"hydra.run.dir={run}"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("DRIVER ")), None)
    assert line is not None, p.stderr[-3000:]
    out = json.loads(line[len("DRIVER "):])
    assert out["code"] in (0, None), p.stderr[-3000:]
    assert "matplotlib" not in out["modules"]  # the report was drawn in a child
    assert "featuretools" not in out["modules"]  # the features were enumerated in a child
    handed = "final stage and outputs: in the process forked lean at start" in (run / "run.log").read_text()
    if lean_final:  # that process shipped the graph: the driver never loaded the export stack
        assert not {"onnx", "skl2onnx", "onnxruntime", "automl.stages.final"} & set(out["modules"])
        assert handed
    else:
        assert {"onnx", "automl.stages.final"} <= set(out["modules"]) and not handed
    m = json.loads((run / "manifest.json").read_text())
    assert m["status"] == "COMPLETE"
    assert (run / "report.html").stat().st_size > 10_000 and m["timings"]["report_s"] > 0
    assert m["final"]["latency"]["single_row_calls"] > 0  # measured in the child, carried back
    assert m["final"]["deployment"]["latency_ms_p50"] > 0
