"""User-facing errors: one line that names the field or column, the rule and the fix."""
from __future__ import annotations


class UserError(Exception):
    """Bad config, bad data or a bad request. The CLI prints it as one line and exits 2."""
    def __init__(self, where: str, rule: str, fix: str) -> None:
        self.where, self.rule, self.fix = where, rule, fix
        super().__init__(f"{where}: {rule}. {fix}")


class ParityError(Exception):
    """The exported ONNX graph disagrees with the Python pipeline beyond the tolerance."""
