"""End-to-end: a binary run scored by f1 with every trial resampled (SMOTE-Tomek) and class-weighted ships a
graph whose `label` applies the decision threshold chosen on out-of-fold predictions, and says so."""
from __future__ import annotations

import json
import shutil

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from tests.cli_runner import DATA, ROOT, run_cli


# slow: a 20 s run of three families under SMOTE-Tomek. The default suite proves the parts in
# tests/unit/test_imbalance.py: the tuned threshold is the best cut on OOF rows, the graph's `label` applies it
# with the probabilities unchanged, the exported graph holds no sampler, the sampler sees only each fold's
# training rows, and the card and per-class report use the threshold (also tests/unit/test_decision_rule.py)
@pytest.mark.slow
def test_f1_run_with_sampler_ships_the_threshold_in_the_graph(tmp_path):
    spaces = tmp_path / "spaces"
    shutil.copytree(ROOT / "search_spaces", spaces)
    (spaces / "imbalance.yaml").write_text(
        "sampler: {type: categorical, choices: [smote_tomek], when: {resampling: true, native_nan: false}}\n"
        "sampler_native_nan: {type: categorical, choices: [random_over], when: {resampling: true, native_nan: true}}\n"
        "ratio: {type: float, low: 0.5, high: 1.0, default: 1.0, when: {sampler: [smote_tomek]}}\n"
        "k_neighbors: {type: int, low: 3, high: 5, default: 5, when: {sampler: [smote_tomek]}}\n"
        "class_weight: {type: categorical, choices: [balanced], when: {class_weights: true}}\n")
    run = tmp_path / "run"
    p = run_cli(f"data.path={DATA / 'medpar_600.csv'}", "task.target=died", "task.metric=f1", "budget.time_s=20",
                "search.cv_folds=3", "estimators.include=[linear,random_forest,lightgbm]",
                f"search.space_dir={spaces}", f"hydra.run.dir={run}", cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads((run / "manifest.json").read_text())
    t = m["final"]["decision_threshold"]
    assert t is not None and 0 < t < 1
    lb = pd.read_csv(run / "leaderboard.csv")
    done = lb[(lb.status == "COMPLETE") & (lb.trial != "ensemble")]
    assert done.preprocessing.str.contains("sampler=").all()
    sess = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    assert float(meta["decision_threshold"]) == float(np.float32(t))
    df = pd.read_csv(DATA / "medpar_600.csv")
    feeds = {}
    for inp in sess.get_inputs():
        col = df[inp.name]
        feeds[inp.name] = (col.to_numpy(dtype=np.float32) if inp.type == "tensor(float)"
                           else col.fillna("").astype(str).to_numpy(dtype=object)).reshape(-1, 1)
    label, proba = sess.run(["label", "probabilities"], feeds)
    classes = json.loads(meta["class_labels"])
    assert list(label) == [classes[1] if p1 >= np.float32(t) else classes[0] for p1 in proba[:, 1]]
    parity = json.loads((run / "parity.json").read_text())
    assert parity["passed"] and parity["label_mismatches"] == 0 and parity["labels_checked"] > 0
    card = (run / "model_card.md").read_text()
    assert "Decision threshold" in card and "| class | precision | recall | f1 | support | predicted |" in card
    profile = json.loads((run / "profile.json").read_text())
    assert "minority_share" in profile["target"] and "imbalanced" in profile["target"]
