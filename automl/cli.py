"""The command-line edge.

`automl [overrides]` composes the Hydra config (automl/config/compose.py, shared with the Python API),
validates it, converts it to the typed RunConfig and calls `run()`. Subcommands that are not a search
run (`automl predict ...`) are dispatched before Hydra parses anything. User errors print one line and
exit 2 (traceback with --debug).
"""
from __future__ import annotations

import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from automl.config.compose import compose, to_run_config
from automl.config.schema import register_configs
from automl.config.validate import validate_config
from automl.data.source import open_source
from automl.errors import UserError
from automl.lean import arrow_free_source, import_pandas_without_arrow
from automl.lean_fork import LeanFork
from automl.logsetup import capture_warnings
from automl.resources import CONF_DIR
from automl.urls import is_url

_START = time.time()
# Subcommands that are not a search run: each is automl/commands/<verb>.py, whose main(argv) returns an exit
# code. Only the module of the verb that runs is imported, so `automl --help` and a config error stay fast.
SUBCOMMANDS: tuple[str, ...] = ("predict", "report", "serve", "drift", "registry", "worker", "compare", "export")
_state = {"started": False, "debug": False}

# OMP_WAIT_POLICY stays at the library default: PASSIVE made HistGradientBoosting ~10x slower here
# (0.35 s -> 3.4 s on 10k rows). Trials run one at a time, so our own threads do not compete.


def _fail(e: BaseException) -> None:
    if _state["debug"]:
        raise e
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


def _hydra_main() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    register_configs()

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
    def task(cfg: Any) -> None:
        # a run's budget counts from process start; a multirun job's from its own start (with the joblib
        # launcher this function runs pickled in a worker process, with a copy of the parent's _START)
        mode = HydraConfig.get().mode
        assert mode is not None  # hydra.main sets the mode before it calls the task
        multirun = mode.name == "MULTIRUN"
        start = time.time() if _state["started"] or multirun else _START
        _state["started"] = True
        capture_warnings()  # after Hydra set up run.log: library warnings go there, not to the console

        try:
            config = to_run_config(cfg)
            validate_config(config)  # before importing the engine: a config error is told in about a second
            if not config.data.tables and not is_url(config.data.path):  # and a wrong data path too
                open_source(config.data.path, query=config.data.query, table=config.data.table)
            arrow_free = arrow_free_source(config.data.path, config.data.tables)
            # budget.lean_final: forked before the engine's imports, for the final stage (automl/lean_fork.py); a
            # multirun job runs in-process, as the Python API does
            lean = config.budget.lean_final and not multirun
            finisher = LeanFork.start(partial(_prepare_finisher, arrow_free)) if lean else None
            try:
                if arrow_free:
                    import_pandas_without_arrow()  # before the engine imports pandas: see automl/lean.py
                from automl.run import run

                manifest = run(config, HydraConfig.get().runtime.output_dir, start=start, finisher=finisher)
            finally:
                if finisher is not None:
                    finisher.close()
        except UserError as e:
            _fail(e)
            return
        # in a sweep a failed job is a row in the comparison (its manifest says why), not the end of the sweep
        if manifest.status != "COMPLETE" and not multirun:
            sys.exit(1)

    task()


def _prepare_finisher(arrow_free: bool) -> None:
    """In the lean fork: pandas as the driver imports it, then what the final stage needs."""
    if arrow_free:
        import_pandas_without_arrow()
    from automl.stages.finish import preload

    preload()


def _check_output_dirs(args: list[str]) -> None:
    """An explicit run/sweep folder must be creatable: say so in one line before Hydra tries."""
    for arg in args:
        key, _, value = arg.partition("=")
        if key not in ("hydra.run.dir", "hydra.sweep.dir") or not value or "$" in value:
            continue
        p = Path(value).expanduser().absolute()
        while not p.exists():
            p = p.parent
        if not p.is_dir() or not os.access(p, os.W_OK | os.X_OK):
            raise UserError(key, f"'{value}' cannot be created ('{p}' is not a writable directory)",
                            f"Set {key} to a folder you can write to.")


_NO_PRECHECK = ("-m", "--multirun", "-h", "--help", "--hydra-help", "--info", "-c", "--cfg", "-p", "--package",
                "--resolve", "-sc", "--shell-completion", "-cd", "--config-dir", "-cp", "--config-path",
                "-cn", "--config-name")


def _precheck_compose(args: list[str]) -> None:
    """Compose once before Hydra does, so a misspelled key or a wrong type is one line with exit 2
    (Hydra's own report spans several lines). Sweeps and custom config dirs go straight to Hydra."""
    if any(a.split("=")[0] in _NO_PRECHECK for a in args):
        return
    compose([a for a in args if not a.lstrip("+~").startswith(("hydra.", "hydra/"))])


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt("SIGTERM")


def main(argv: list[str] | None = None) -> None:
    import signal

    signal.signal(signal.SIGTERM, _sigterm)  # SIGTERM ends the run like Ctrl-C: consistent storage, partial leaderboard
    args = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in args:
        args.remove("--debug")
        _state["debug"] = True
        os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    if args and args[0] in SUBCOMMANDS:
        import importlib

        try:
            sys.exit(importlib.import_module(f"automl.commands.{args[0]}").main(args[1:]))
        except UserError as e:
            _fail(e)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM of `automl worker`, `serve`, `predict`: no traceback
            print(f"error: {args[0]} interrupted", file=sys.stderr)
            sys.exit(130)
        return
    sys.argv = [sys.argv[0], *args]
    try:
        _check_output_dirs(args)
        _precheck_compose(args)
    except Exception as e:
        _fail(e)
    try:
        _hydra_main()
    except KeyboardInterrupt:
        print("error: interrupted; the run folder holds a partial leaderboard and the study (rerun to resume)",
              file=sys.stderr)
        sys.exit(130)
    except SystemExit as e:
        # Hydra reports compose-time errors (unknown key, wrong type) itself and exits 1: a user error
        if e.code == 1 and not _state["started"]:
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
