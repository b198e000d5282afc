"""RSS at each step of a final model's refit, export and parity gate: which step sets each process's peak.

    python benchmarks/export_steps.py export RUN_DIR --trial N --out OUT   # `automl export`, instrumented
    python benchmarks/export_steps.py catboost [--iterations 895] [--depth 7]

`export` runs `automl export` in this process with the engine's export functions wrapped: each prints its
process's pid, RSS, peak RSS (VmHWM) and anonymous RSS on entry and on return, on stderr, in the refit's and the
gate's processes alike (they are forked). `catboost` fits one CatBoost on 2,400 random rows of 25 float columns
inside the engine's pipeline and runs a trial's export steps in one process: export_onnx, then the parity check on
the graph's bytes; it prints each step's peak above the fitted model. Point PYTHONPATH at another checkout to
measure its code the same way.
"""
from __future__ import annotations

import functools
import os
import sys
from typing import Any


def status() -> dict[str, float]:
    with open("/proc/self/status") as f:
        return {k: int(v.split()[0]) / 1024 for k, v in (line.split(":", 1) for line in f)
                if k in ("VmRSS", "VmHWM", "RssAnon")}


def line() -> str:
    s = status()
    return f"pid {os.getpid()} rss {s['VmRSS']:.0f} hwm {s['VmHWM']:.0f} anon {s['RssAnon']:.0f}"


def wrap(module: Any, name: str) -> None:
    if not hasattr(module, name):  # another checkout's code may lack it
        return
    f = getattr(module, name)

    @functools.wraps(f)
    def logged(*args: Any, **kwargs: Any) -> Any:
        print(f"  > {module.__name__}.{name} {line()}", file=sys.stderr, flush=True)
        out = f(*args, **kwargs)
        print(f"  < {module.__name__}.{name} {line()}", file=sys.stderr, flush=True)
        return out

    setattr(module, name, logged)


def instrumented_export(argv: list[str]) -> None:
    import importlib

    from automl.cli import main

    for module, names in (("automl.stages.refit", ("export_onnx", "check_parity", "onnx_score", "python_outputs",
                                                   "release_freed")),
                          ("automl.stages.gate", ("check_graph", "check_parity", "onnx_score")),
                          ("automl.export.onnx", ("session",)),
                          ("automl.export.catboost_node", ("catboost_tree_node",))):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError:  # another checkout's code may lack it
            continue
        for name in names:
            wrap(mod, name)
    sys.argv = ["automl", "export", *argv]
    main()


def catboost_steps(iterations: int, depth: int) -> None:
    import gc

    import numpy as np
    import pandas as pd

    from automl.data.roles import infer_schema, to_model_frame
    from automl.estimators import REGISTRY
    from automl.export.converters import register_converters
    from automl.export.onnx import check_parity, export_onnx
    from automl.memory import release_freed
    from automl.preprocessing.pipeline import build_pipeline

    register_converters()
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(2400, 25)), columns=[f"x{i}" for i in range(25)])
    df["y"] = df.x0 + rng.normal(0, 0.3, len(df))
    schema = infer_schema(df, "y", [], [])
    X = to_model_frame(df, schema)
    est = REGISTRY.get("catboost").build({"iterations": iterations, "depth": depth}, task="regression", seed=0)
    pipe = build_pipeline(est, {}, schema, []).fit(X, df.y.to_numpy())
    gc.collect()
    release_freed()
    base = status()["VmRSS"]
    model = export_onnx(pipe, schema, "regression", None, {})
    exported = status()["VmHWM"] - base
    graph = model.SerializeToString()
    del model
    report = check_parity(graph, pipe, X.iloc[:200], schema, "regression", 1e-4, 0)
    print(f"iterations {iterations} depth {depth}: fitted {base:.0f} MB RSS; peak above it: export_onnx "
          f"+{exported:.0f}, with the parity check's onnxruntime session +{status()['VmHWM'] - base:.0f}; "
          f"graph {len(graph) / 1e6:.1f} MB; parity passed {report['passed']}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["export"]:
        instrumented_export(sys.argv[2:])
    elif sys.argv[1:2] == ["catboost"]:
        import argparse

        ap = argparse.ArgumentParser()
        ap.add_argument("--iterations", type=int, default=895)
        ap.add_argument("--depth", type=int, default=7)
        a = ap.parse_args(sys.argv[2:])
        catboost_steps(a.iterations, a.depth)
    else:
        sys.exit(__doc__)
