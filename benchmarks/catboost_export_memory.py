"""What one large CatBoost costs a process at each step of its export: fit, catboost's ONNX conversion, the parsed
copy freed (and malloc_trim), an onnxruntime session of the graph, with and without onnxruntime's memory options.

    python benchmarks/catboost_export_memory.py [--iterations 895] [--depth 7] [--rows 2400] [--cols 25]

Defaults: the catboost session 46's schooling seed 4 run shipped (benchmarks/RESULTS.md, session 46). Prints RSS
and USS (MB) after each step, in one process.
"""
from __future__ import annotations

import argparse
import ctypes
import gc

import numpy as np
import psutil


def mb() -> str:
    m = psutil.Process().memory_full_info()
    return f"rss {m.rss / 2**20:.0f} uss {m.uss / 2**20:.0f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=895)
    ap.add_argument("--depth", type=int, default=7)
    ap.add_argument("--rows", type=int, default=2400)
    ap.add_argument("--cols", type=int, default=25)
    a = ap.parse_args()
    import automl.estimators.catboost  # noqa: F401  (skips catboost's notebook widget, as the engine does)

    libc = ctypes.CDLL("libc.so.6")
    import onnxruntime as ort
    from catboost import CatBoostRegressor
    from catboost.utils import convert_to_onnx_object

    print("start", mb())
    rng = np.random.default_rng(0)
    X = rng.random((a.rows, a.cols)).astype(np.float32)
    y = X[:, 0] + rng.normal(0, 0.3, a.rows)
    model = CatBoostRegressor(iterations=a.iterations, learning_rate=0.0176, depth=a.depth, l2_leaf_reg=0.9,
                              random_strength=0.91, thread_count=1, verbose=False, allow_writing_files=False)
    model.fit(X, y)
    print("fit", mb())
    onx = convert_to_onnx_object(model)
    graph = onx.SerializeToString()
    print("convert", mb(), f"graph {len(graph) / 1e6:.1f} MB")
    del onx
    gc.collect()
    print("parsed copy freed", mb())
    libc.malloc_trim(0)
    print("malloc_trim", mb())
    sess = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    print("onnxruntime session", mb())
    sess.run(None, {sess.get_inputs()[0].name: X})
    print("onnxruntime run", mb())
    del sess
    gc.collect()
    libc.malloc_trim(0)
    print("session freed", mb())
    opts = ort.SessionOptions()
    opts.enable_cpu_mem_arena = False
    opts.enable_mem_pattern = False
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    lean = ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])
    print("onnxruntime session, no arena, no memory pattern, no optimisation", mb())
    del lean


if __name__ == "__main__":
    main()
