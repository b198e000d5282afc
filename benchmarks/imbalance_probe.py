"""Design probe for the imbalance warm start, kept off pneumonia (the benchmark's data): german_health
subsampled to a pneumonia-like training set (2220 rows, 46 positives, ~2%), plus an independent test set
at the same prevalence from the unused rows (200 positives, 9,800 negatives). Per candidate (each
family's default x {plain, class weights, balanced bagging}, as the warm start queues them): 5-fold CV
average precision on the training rows (the engine's objective) and the test AP of the refit.

    PYTHONPATH=. python benchmarks/imbalance_probe.py DRAW [family,family,...]
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score
from automl.data.roles import infer_schema, to_model_frame
from automl.data.split import cv_folds
from automl.evaluation.metrics import get_metric
from automl.search import objective as obj

draw = int(sys.argv[1]) if len(sys.argv) > 1 else 0
fams = sys.argv[2].split(",") if len(sys.argv) > 2 else ["linear", "hist_gradient_boosting", "lightgbm", "random_forest", "extra_trees", "xgboost", "catboost"]
df = pd.read_csv(Path(__file__).resolve().parents[2] / "shared" / "datasets" / "german_health.csv")
rng = np.random.default_rng(draw)
pos, neg = np.flatnonzero(df.outwork == 1), np.flatnonzero(df.outwork == 0)
rng.shuffle(pos)
rng.shuffle(neg)
train = df.iloc[np.r_[pos[:46], neg[:2174]]].reset_index(drop=True)
test = df.iloc[np.r_[pos[46:46 + 200], neg[2174:2174 + 9800]]].reset_index(drop=True)
schema = infer_schema(train, "outwork", [], [])
y = train.outwork.to_numpy()
data = obj.SearchData(X=to_model_frame(train, schema), y=y, folds=cv_folds(y, "binary", 5, draw), schema=schema,
                      missing_numeric=[], task="binary", metric=get_metric("average_precision"), n_classes=2,
                      seed=draw, families=fams, n_jobs=1)
Xt, yt = to_model_frame(test, schema), test.outwork.to_numpy()
for fam in fams:
    for name, var in [("plain", None)] + [(list(v.values())[0], v) for v in obj.IMBALANCE_VARIANTS]:
        params = obj.default_params(data, fam, imbalance=var)
        if var is not None and params == obj.default_params(data, fam):
            continue
        cand = obj.Candidate(fam, {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith(fam + ".")},
                             {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("pre.")},
                             {k.split(".", 1)[1]: v for k, v in params.items() if k.startswith("imb.")})
        t = time.time()
        res = obj._cross_validate(None, data, cand)
        cv_s = time.time() - t
        pipe = obj.build(data, cand).fit(data.X, data.y)
        test_ap = average_precision_score(yt, pipe.predict_proba(Xt)[:, 1])
        print(json.dumps({"draw": draw, "family": fam, "variant": name, "cv_ap": round(res["mean"], 4),
                          "cv_std": round(res["std"], 4), "test_ap": round(test_ap, 4), "cv_s": round(cv_s, 1),
                          "export_s": round(res["export_s"], 2)}), flush=True)
