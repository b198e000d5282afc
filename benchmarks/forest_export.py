"""A forest's ONNX export: skl2onnx's own converter against the engine's (automl/export/forest_onnx.py).

Each measurement runs in a fresh process: fit a random forest on doctor_contacts (the first 16,000 rows,
one-hot encoded, float32), then export it through skl2onnx's convert_sklearn with either converter, and score
4,000 rows through onnxruntime. Reports the export's seconds and its peak RSS above the fitted model's, the
graph's bytes, and what building the onnxruntime session added. Both graphs' outputs are compared.

    python benchmarks/forest_export.py [--trees 150] [--leaves 1 3]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "doctor_contacts.csv"

CHILD = r"""
import json, sys, threading, time
import numpy as np, pandas as pd, psutil
from sklearn.ensemble import RandomForestRegressor
proc, peak = psutil.Process(), [0.0]
def poll():
    while True:
        peak[0] = max(peak[0], proc.memory_info().rss / 2**20); time.sleep(0.005)
threading.Thread(target=poll, daemon=True).start()
path, trees, leaf, which = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
df = pd.read_csv(path); y = df.pop("mdu").to_numpy()[:16000]
X = pd.get_dummies(df, dtype="float32").to_numpy(np.float32)[:16000]
model = RandomForestRegressor(trees, min_samples_leaf=leaf, max_features=0.5, random_state=0).fit(X, y)
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
import onnxruntime as ort
if which == "engine":
    from automl.export.converters import register_converters
    from automl.export.deferred import fill_deferred
    register_converters()
base = proc.memory_info().rss / 2**20; peak[0] = base; t = time.perf_counter()
onx = convert_sklearn(model, initial_types=[("x", FloatTensorType([None, X.shape[1]]))],
                      target_opset={"": 21, "ai.onnx.ml": 3}, model_optim=False)
if which == "engine":
    fill_deferred(onx)
graph = onx.SerializeToString(); del onx
export_s, export_peak = time.perf_counter() - t, peak[0] - base
base = proc.memory_info().rss / 2**20; peak[0] = base
sess = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
pred = sess.run(None, {"x": X[:4000]})[0].ravel()
print(json.dumps({"converter": which, "trees": trees, "min_samples_leaf": leaf,
                  "nodes": int(sum(e.tree_.node_count for e in model.estimators_)),
                  "export_s": round(export_s, 2), "export_peak_mb": round(export_peak),
                  "graph_mb": round(len(graph) / 2**20, 1), "session_peak_mb": round(peak[0] - base),
                  "pred": pred[:2000].tolist()}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trees", type=int, default=150)
    ap.add_argument("--leaves", type=int, nargs="+", default=[1, 3])
    a = ap.parse_args()
    for leaf in a.leaves:
        preds = {}
        for which in ("skl2onnx", "engine"):
            out = subprocess.run([sys.executable, "-c", CHILD, str(DATA), str(a.trees), str(leaf), which],
                                 capture_output=True, text=True, check=True, cwd=ROOT)
            rec = json.loads(out.stdout.strip().splitlines()[-1])
            preds[which] = rec.pop("pred")
            print(json.dumps(rec), flush=True)
        same = preds["skl2onnx"] == preds["engine"]
        print(json.dumps({"min_samples_leaf": leaf, "identical_predictions_on_2000_rows": same}), flush=True)


if __name__ == "__main__":
    main()
