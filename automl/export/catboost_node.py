"""CatBoost's TreeEnsemble node as bytes, cut from its exporter's serialized model without parsing the model.

`catboost.utils.convert_to_onnx_object` parses catboost's serialized graph into a Python ModelProto: for a
large model (895 trees of depth 7, an 8.9 MB graph) that parse and the node's copy out of it peaked ~90 MB
above the fitted model, and glibc kept ~50 MB of it after the parse was freed (benchmarks/RESULTS.md, session
47). catboost writes the same bytes itself (`save_model(format="onnx")`); the node, the opsets and the count
of initializers are found by walking protobuf's wire format (a tag, then a varint, 8 or 4 bytes, or a length
and that many bytes), which reads a few dozen tags and copies only the node's own bytes.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from automl.memory import release_freed

# field numbers of onnx.proto3
MODEL_GRAPH, MODEL_OPSET_IMPORT = 7, 8
GRAPH_NODE, GRAPH_INITIALIZER = 1, 5
NODE_OP_TYPE, NODE_DOMAIN = 4, 7
OPSET_DOMAIN, OPSET_VERSION = 1, 2


@dataclass(frozen=True)
class TreeNode:
    """The exporter's one TreeEnsemble node, serialized, with what the converter needs before the attributes."""
    op_type: str
    domain: str
    opsets: dict[str, int]  # domain -> version, as the exporter's model imports them
    node: bytes  # a serialized NodeProto: parsed into the finished graph only (automl/export/deferred.py)


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated protobuf varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def fields(buf: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, value) of one serialized message's top-level fields, in order: an int for a varint, a
    memoryview of `buf` for a length-delimited field (not copied), of the raw bytes for a fixed-width one."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, value
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            yield number, buf[pos:pos + width]
            pos += width
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError("truncated protobuf field")
            yield number, buf[pos:pos + size]
            pos += size
        else:  # groups (3, 4): proto2 only, never in an ONNX model
            raise ValueError(f"unexpected protobuf wire type {wire}")


def _text(value: int | memoryview) -> str:
    return bytes(value).decode() if isinstance(value, memoryview) else ""


def tree_node(model: bytes) -> TreeNode:
    """The one TreeEnsemble node of a serialized ONNX model, or NotImplementedError naming what it holds."""
    view = memoryview(model)
    opsets: dict[str, int] = {}
    graph: memoryview | None = None
    for number, value in fields(view):
        if number == MODEL_GRAPH and isinstance(value, memoryview):
            graph = value
        elif number == MODEL_OPSET_IMPORT and isinstance(value, memoryview):
            entry = dict(fields(value))
            version = entry.get(OPSET_VERSION, 1)
            opsets[_text(entry.get(OPSET_DOMAIN, 0))] = version if isinstance(version, int) else 1
    nodes: list[tuple[str, str, memoryview]] = []
    initializers = 0
    for number, value in fields(graph if graph is not None else memoryview(b"")):
        if number == GRAPH_NODE and isinstance(value, memoryview):
            own = {n: v for n, v in fields(value) if n in (NODE_OP_TYPE, NODE_DOMAIN)}
            nodes.append((_text(own.get(NODE_OP_TYPE, 0)), _text(own.get(NODE_DOMAIN, 0)), value))
        elif number == GRAPH_INITIALIZER:
            initializers += 1
    trees = [n for n in nodes if n[0].startswith("TreeEnsemble")]
    if len(trees) != 1 or initializers:
        raise NotImplementedError(f"CatBoost exported {[n[0] for n in nodes]} and {initializers} initializer(s); "
                                  "expected one TreeEnsemble")
    op_type, domain, node = trees[0]
    return TreeNode(op_type, domain, opsets, bytes(node))


def catboost_tree_node(model: Any) -> TreeNode:
    """The TreeEnsemble node of a fitted CatBoost model's ONNX export (catboost's own exporter)."""
    fd, path = tempfile.mkstemp(suffix=".onnx")
    os.close(fd)
    try:
        model.save_model(path, format="onnx")
        with open(path, "rb") as f:
            tree = tree_node(f.read())
    finally:
        os.unlink(path)
    release_freed()  # the exporter's buffers and the file's bytes: not kept by glibc under the graph built next
    return tree
