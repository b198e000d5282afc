"""A plan of the final stage's ladder: the trials one attempt refits together, and how they combine."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from automl.stages.stack_choice import StackChoice


@dataclass
class Plan:
    kind: str  # "stack", "ensemble" or "single"
    members: list[tuple[Any, float]]  # (trial, weight)
    stack: StackChoice | None = None  # kind "stack": the level-2 stacker and its nested OOF predictions
    # the parity gate in a process of its own (automl/stages/gate.py); False to gate where the refit ran, which
    # names the members of an ensemble that fail it on their own
    gate_apart: bool = True

    @property
    def combined(self) -> bool:
        return self.kind in ("stack", "ensemble")

    def cv(self, ens: dict[str, Any] | None) -> float | None:
        """The plan's OOF score: a single's CV, the Caruana weights' OOF score, the stack's nested one."""
        if self.stack is not None:
            return self.stack.score
        return (ens or {}).get("oof_score") if self.kind == "ensemble" else self.members[0][0].values[0]

    def member_set(self) -> tuple[int, ...]:
        return tuple(sorted(tr.number for tr, _ in self.members))

    @property
    def label(self) -> str:
        if self.combined:
            return f"{'stacked ' if self.stack else ''}ensemble of trials {[tr.number for tr, _ in self.members]}"
        return f"trial {self.members[0][0].number} ({self.members[0][0].params['family']})"
