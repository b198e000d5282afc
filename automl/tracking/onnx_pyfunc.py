"""model.onnx as an MLflow pyfunc model: raw frame in, the same predictions onnxruntime gives.

Logged as MLflow "models from code": this file is the model's code (no pickle); MLflow runs it when it
loads the model, so the loading environment needs automl (and onnxruntime) importable. Input handling
is `automl predict`'s: the graph's input schema from the model's metadata, feeds built from the raw
columns (automl/export/contract.py), output columns `prediction` and, for classifiers, `proba_<class>`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.models
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from automl.export.contract import class_labels, feeds_from_frame, input_schema
from automl.export.onnx import session

ARTIFACT = "model_onnx"  # the key of model.onnx in the pyfunc model's artifacts


def scores(sess: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """`prediction` (and `proba_<class>`) for the raw rows of `frame`, as `automl predict` writes them."""
    meta = sess.get_modelmeta().custom_metadata_map
    feeds = feeds_from_frame(frame, input_schema(meta), where="the input frame")
    names = [o.name for o in sess.get_outputs()]
    res = dict(zip(names, sess.run(None, feeds), strict=True))
    out = pd.DataFrame({"prediction": np.asarray(res["label"]).reshape(-1)})
    classes = class_labels(meta)
    if classes is not None:
        proba = np.asarray(res["probabilities"])
        for j, c in enumerate(classes):
            out[f"proba_{c}"] = proba[:, j]
    return out


class OnnxModel(PythonModel):  # type: ignore[misc]  # subclassing Any: mlflow is untyped here
    def load_context(self, context: Any) -> None:
        self.sess = session(Path(context.artifacts[ARTIFACT]).read_bytes())

    # model_input has no type hint: MLflow reads one as a schema to validate (and warns on a plain frame)
    def predict(self, context: Any, model_input, params: dict[str, Any] | None = None) -> pd.DataFrame:  # type: ignore[no-untyped-def]
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return scores(self.sess, frame)


if __name__ != "automl.tracking.onnx_pyfunc":  # run by MLflow as the model's code, not imported by automl
    mlflow.models.set_model(OnnxModel())
