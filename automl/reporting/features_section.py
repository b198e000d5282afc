"""The model card's list of synthesised features the shipped model uses, with their definitions."""
from __future__ import annotations

from typing import Any

MAX_ROWS = 60


def synthesised_features(final: dict[str, Any]) -> list[str]:
    members = final.get("synthesised_features") or []
    if not any(members):
        return []
    lines = ["", "### Synthesised features the model uses",
             "- Computed inside `model.onnx` from the raw columns (fitted on the training rows only; "
             "featuretools enumerated the candidates, the engine's own ops compute them)."]
    for i, rows in enumerate(members):
        if not rows:
            continue
        if len(members) > 1:
            lines += ["", f"Ensemble member {i + 1}:"]
        lines += ["", "| feature | definition |", "|---|---|"]
        lines += [f"| `{r['feature']}` | {r['definition'].replace('|', '/')} |" for r in rows[:MAX_ROWS]]
        if len(rows) > MAX_ROWS:
            lines.append(f"| ... | and {len(rows) - MAX_ROWS} more (manifest.json, final.synthesised_features) |")
    return lines
