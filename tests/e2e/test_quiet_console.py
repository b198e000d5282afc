"""Library warnings land in run.log, never between the progress lines on the user's terminal.

`fault_warn` (tests/plugins/fault_families.py) raises a UserWarning in every fit, so a warning is
certain, and it is raised where the engine's warnings come from: inside forked, supervised trials.
"""
from __future__ import annotations

from pathlib import Path

from tests.reliability.helpers import MEDPAR, run_cli


def test_warnings_go_to_run_log_not_the_console(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    p = run_cli(f"data.path={MEDPAR}", "task.target=died", "estimators.include=[baseline,fault_warn]",
                "budget.time_s=20", "budget.trial_time_s=5", "budget.n_trials=3", "search.n_workers=1",
                f"hydra.run.dir={run_dir}", cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    console = [ln for ln in (p.stdout + p.stderr).splitlines() if "Warning" in ln or "warnings.warn" in ln]
    assert console == [], "\n".join(console)
    log = (run_dir / "run.log").read_text()
    assert "[py.warnings][WARNING]" in log
    assert "UserWarning: fault_warn: injected warning in fit" in log
    assert "trial" in log  # the progress lines are still in run.log, beside the warnings
