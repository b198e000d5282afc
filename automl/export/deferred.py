"""Large tree-ensemble nodes whose attributes are written only into the finished graph.

skl2onnx copies every node into its graph and the graph into its model, and an ensemble copies each
member's graph again; a tree node's attributes (millions of entries for a deep forest or a 500-tree
CatBoost) make each copy cost hundreds of MB. A converter adds the node without them and `defer`s a
function that writes them; `fill_deferred` calls it on the node of the finished model, in place.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

MARK = "automl-deferred:"
_PENDING: dict[str, Callable[[Any], None]] = {}  # marker key -> writes the node's attributes


def defer(node: Any, fill: Callable[[Any], None]) -> None:
    """Mark `node` (a NodeProto a converter just added) so that `fill(node)` runs on its final copy."""
    key = f"{id(fill)}-{len(_PENDING)}"
    _PENDING[key] = fill
    node.doc_string = MARK + key


def fill_deferred(model: Any) -> None:
    """Give every marked node of the finished `model` its attributes, one node at a time."""
    for node in model.graph.node:
        if node.doc_string.startswith(MARK):
            fill = _PENDING.pop(node.doc_string[len(MARK):])
            node.doc_string = ""
            fill(node)


def forget_deferred() -> None:
    """Drop what an export that failed half-way left pending."""
    _PENDING.clear()


def pending() -> int:
    """How many marked nodes still wait for their attributes (0 once an export finished)."""
    return len(_PENDING)
