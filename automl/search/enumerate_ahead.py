"""featuretools' feature enumeration, made once in a child before the search forks its workers.

Which single-table features exist (automl/features/synthesis.py) is featuretools' answer for a fit's column
names and primitives, whatever the values. Asked once over all of the data's columns of each kind that a
trial may synthesise from, in a supervised child, the answer is filtered for every fit after: the driver,
its workers and every trial they fork then hold no featuretools (~16 MB of heap in each process, ~1.5 s to
import; benchmarks/RESULTS.md, session 41).
"""
from __future__ import annotations

import logging
from typing import Any

from automl.features.build import enumerating, warm_imports
from automl.features.synthesis import enumerate_columns, remember
from automl.search.objective import SearchData, data_context
from automl.search.supervisor import COMPLETE, supervise

log = logging.getLogger("automl")

# Beyond this many numeric columns the pairs are not enumerated ahead (featuretools takes ~0.2 s for 40
# columns, 3,900 features, and ~2 s for 100, 24,750): the search imports featuretools as it did before
MAX_NUMERIC = 40
TIMEOUT_S = 30.0


def _enumerate_child(conn: Any, columns: dict[str, list[str]]) -> Any:
    return enumerate_columns(columns)


def warm_before_fork(data: SearchData, import_here: bool) -> None:
    """Before the search forks: enumerate the features of the kinds the space can sample (and of the dates,
    always synthesised) in a child and remember them here. Where that is not done (too many numeric columns)
    or fails, and `import_here` (several workers will fork from this process), import featuretools here
    instead, as each worker that first samples such a pipeline would otherwise import its own copy."""
    ctx = data_context(data.schema)
    could = {p.name: True for p in data.spaces["preprocessing"]
             if p.name in ("dfs", "text_stats") and True in p.choices and p.active(ctx)}
    columns = enumerating(could, data.schema)
    if not columns:
        return
    if len(columns.get("numeric", [])) <= MAX_NUMERIC:
        out = supervise(_enumerate_child, (columns,), timeout_s=TIMEOUT_S, memory_mb=0.0)
        if out.status == COMPLETE:
            remember(out.value)
            return
        log.warning("enumerating the synthesised features ahead failed (%s); trials import featuretools",
                    out.error or out.status)
    if import_here:
        warm_imports(could, data.schema)
