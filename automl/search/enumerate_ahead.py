"""featuretools' feature enumeration, made once in a child of the search's process.

Which single-table features exist (automl/features/synthesis.py) is featuretools' answer for a fit's column
names and primitives, whatever the values. Asked once over all of the data's columns of each kind a trial may
synthesise from, in a supervised child, the answer is filtered for every fit after: the driver, its workers
and every trial they fork then hold no featuretools (~16 MB of heap in each process, ~1.5 s to import;
benchmarks/RESULTS.md, session 41).
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from automl.data.roles import Schema
from automl.features.build import data_context, enumerating
from automl.features.synthesis import enumerate_columns, enumerated, import_featuretools, remember
from automl.search.supervisor import COMPLETE, supervise

log = logging.getLogger("automl")

# Beyond this many numeric columns the pairs are not enumerated ahead (featuretools takes ~0.2 s for 40
# columns, 3,900 features, and ~2 s for 100, 24,750): featuretools is imported as before
MAX_NUMERIC = 40
TIMEOUT_S = 30.0
CHOICES = ("dfs", "text_stats")  # the preprocessing choices whose pipelines featuretools enumerates for


def _enumerate_child(conn: Any, columns: dict[str, list[str]]) -> Any:
    return enumerate_columns(columns)


def could_sample(preprocessing: Sequence[Any], schema: Schema) -> dict[str, bool]:
    """The synthesis choices the `preprocessing` space (its ParamSpecs) can turn on for this data."""
    ctx = data_context(schema)
    return {p.name: True for p in preprocessing if p.name in CHOICES and True in p.choices and p.active(ctx)}


def synthesis_ready(pre: Mapping[str, Any], preprocessing: Sequence[Any], schema: Schema) -> None:
    """Before pipelines built from `pre` are fitted in children of this process: the features featuretools
    enumerates for them known here. The first time some are not, every kind the `preprocessing` space can
    synthesise from (and the dates, always) is enumerated in a child and remembered. Where that is not done
    (more than MAX_NUMERIC numeric columns) or fails, featuretools is imported here, once: the children
    inherit it instead of each importing its own."""
    if "featuretools" in sys.modules or all(enumerated(k, cols) for k, cols in enumerating(pre, schema).items()):
        return
    could = could_sample(preprocessing, schema)
    columns = enumerating({c: could.get(c) or pre.get(c) for c in CHOICES}, schema)
    if len(columns.get("numeric", [])) <= MAX_NUMERIC:
        out = supervise(_enumerate_child, (columns,), timeout_s=TIMEOUT_S, memory_mb=0.0)
        if out.status == COMPLETE:
            remember(out.value)
            return
        log.warning("enumerating the synthesised features in a child failed (%s); featuretools is imported "
                    "instead", out.error or out.status)
    import_featuretools()
