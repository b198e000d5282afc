"""Run the `automl` CLI as a user would, in a fresh process (for the config and e2e tests)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "automl", *args], cwd=cwd or ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    """stderr lines that are not log records or library warnings."""
    return [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("[")
            and "Warning" not in ln and not ln.startswith("  ")]


def python_json(code: str, *args: str, tag: str = "OUT ") -> dict:
    """Run `code` (with `args` as sys.argv[1:]) in a fresh interpreter that imports this checkout, and return the
    JSON it printed on the line starting with `tag`; fail with its stderr if it printed none."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith(tag)), None)
    assert line is not None, p.stderr[-3000:]
    return json.loads(line[len(tag):])
