"""Loading only verified artefacts: a run folder's model.onnx whose SHA-256 matches its manifest.

Nothing is unpickled: the graph is parsed as protobuf, checked for external-data references
(refused: they name files outside the artefact, the path-traversal class of ONNX CVEs) and handed
to onnxruntime as bytes, so no file path ever reaches the runtime.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automl.errors import UserError
from automl.export.contract import class_labels, input_schema
from automl.export.reference_profile import load_reference_profile
from automl.io import RunPaths
from automl.manifest import Manifest


@dataclass
class LoadedModel:
    label: str  # what metrics and responses call it: NAME@vN or the run folder's name
    root: Path
    sha256: str
    session: Any
    schema: list[dict[str, str]]
    categories: dict[str, frozenset[str]]
    classes: list[Any] | None
    task: str
    target: str
    output_names: list[str]
    reference: dict[str, Any] | None = None
    manifest: Manifest = field(default_factory=Manifest)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _node_tensors(nodes: Any) -> Iterator[Any]:
    for node in nodes:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for g in attr.graphs:
                yield from _tensors(g)


def _tensors(graph: Any) -> Iterator[Any]:
    """Every TensorProto a graph holds, subgraphs (If/Loop/Scan bodies) included."""
    yield from graph.initializer
    for sp in graph.sparse_initializer:
        yield sp.values
        yield sp.indices
    yield from _node_tensors(graph.node)


def check_no_external_data(data: bytes, where: str) -> None:
    import onnx

    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as e:  # protobuf DecodeError
        raise UserError(where, f"model.onnx is not a valid ONNX protobuf ({type(e).__name__})",
                        "Re-export the model with automl.") from None
    tensors = [_tensors(model.graph)] + [_node_tensors(f.node) for f in model.functions]
    for it in tensors:
        for t in it:
            if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data):
                raise UserError(where, f"model.onnx references external data (tensor '{t.name}')",
                                "Serve only single-file graphs as automl exports them.")


def read_verified(root: Path, where: str = "--model", expected_sha: str | None = None) -> tuple[bytes, Manifest]:
    """model.onnx bytes and the manifest, after checking the hash the run recorded (and the registry's)."""
    model, manifest_path = RunPaths(root).model, RunPaths(root).manifest
    if not model.is_file():
        raise UserError(where, f"'{root}' holds no {model.name}",
                        "Point to a completed run folder or a registry entry.")
    if not manifest_path.is_file():
        raise UserError(where, f"'{root}' holds no {manifest_path.name}, so {model.name} cannot be verified",
                        "Serve run folders as automl wrote them (or push them to the registry).")
    try:
        manifest = Manifest.from_json(json.loads(manifest_path.read_text(encoding="utf-8")))
        recorded = manifest.final["model_sha256"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UserError(where, f"'{manifest_path}' records no final.model_sha256 (did the run complete?)",
                        "Use the folder of a run whose status is COMPLETE.") from None
    data = model.read_bytes()
    actual = sha256_bytes(data)
    if actual != recorded:
        raise UserError(where,
                        f"{model.name} SHA-256 {actual[:12]}... differs from {manifest_path.name} ({recorded[:12]}...)",
                        "The file was changed after the run; restore it or re-run the training.")
    if expected_sha is not None and actual != expected_sha:
        raise UserError(where,
                        f"{model.name} SHA-256 {actual[:12]}... differs from the registry record "
                        f"({expected_sha[:12]}...)",
                        "The registry copy was modified; push the run again.")
    check_no_external_data(data, where)
    return data, manifest


def load_model(root: Path, label: str, where: str = "--model", expected_sha: str | None = None,
               threads: int = 1) -> LoadedModel:
    import onnxruntime as ort

    data, manifest = read_verified(root, where, expected_sha)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    # one thread: single-row latency is dominated by thread hand-offs, not compute
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    if "input_schema" not in meta:
        raise UserError(where, f"'{RunPaths(root).model}' was not written by automl (no input_schema metadata)",
                        "Serve a model.onnx from an automl run folder.")
    reference = None
    ref_path = RunPaths(root).reference_profile
    if ref_path.is_file():
        want = manifest.final.get("reference_profile_sha256")
        if want and sha256_bytes(ref_path.read_bytes()) != want:
            raise UserError(where, f"{ref_path.name} differs from the hash in manifest.json",
                            "Restore the file or re-run the training.")
        reference = load_reference_profile(ref_path)
    return LoadedModel(label=label, root=root, sha256=sha256_bytes(data), session=sess, schema=input_schema(meta),
                       categories={c: frozenset(v) for c, v in json.loads(meta.get("categories", "{}")).items()},
                       classes=class_labels(meta), task=meta.get("task", ""), target=meta.get("target", ""),
                       output_names=[o.name for o in sess.get_outputs()], reference=reference, manifest=manifest)
