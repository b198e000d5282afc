"""Live progress while searching: trials done, failed and pruned, best score so far, time left.

On a terminal a rich status line updates in place; every trial is also one log line (run.log).
"""
from __future__ import annotations

import logging
import sys
from typing import Any

log = logging.getLogger("automl")


class Progress:
    def __init__(self, metric: str, budget: Any) -> None:
        self.metric = metric
        self.budget = budget
        self._live: Any = None
        self._last: dict[str, Any] = {}

    def __enter__(self) -> Progress:
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self._render(), console=Console(stderr=True), refresh_per_second=4, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def _render(self) -> Any:
        from rich.text import Text

        d = self._last
        best = d.get("best")
        return Text(f"searching | trials {d.get('completed', 0)} done, {d.get('failed', 0)} failed, "
                    f"{d.get('pruned', 0)} pruned | best {self.metric} "
                    f"{'-' if best is None else f'{best:.5g}'} | {max(self.budget.left(), 0):.0f}s left")

    def update(self, d: dict[str, Any]) -> None:
        self._last = d
        log_trial(self.metric, d)
        if self._live is not None:
            self._live.update(self._render())


def log_trial(metric: str, d: dict[str, Any]) -> None:
    """One log line per trial (also what forked workers write)."""
    val = "" if d["value"] is None else f" {metric}={d['value']:.5g}"
    err = f" ({d['error'][:120]})" if d.get("error") else ""
    best = "-" if d["best"] is None else f"{d['best']:.5g}"
    log.info("trial %d %-22s %-8s%s%s | best %s | %.1fs | %.0fs left", d["number"], d["family"], d["status"],
             val, err, best, d["seconds"], max(d["left"], 0))
