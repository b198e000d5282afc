"""pandas without pyarrow in a run's driver, when the run never reads through Arrow.

pandas imports pyarrow whenever it is installed (pandas.compat, pandas._libs.lib), and pyarrow's
libraries add ~34 MB to the resident set of the driver and of every trial forked from it, more than
any small dataset costs (benchmarks/RESULTS.md, session 36). A run on one CSV file read whole never
uses Arrow in the driver: pandas parses it; a file too large to read whole is scanned in a spawned
process that loads pyarrow itself (automl/data/large.py). So the driver imports pandas with pyarrow
hidden; pyarrow stays importable for the code that asks for it (a scan, a Parquet or SQL source, a
library), but pandas itself keeps to its own NumPy-backed arrays in that process. Only the engine's own
processes do this: a user's Python process that imports automl keeps its pandas as it is.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Collection, Sequence
from pathlib import Path

# what pandas reads with its own parser, without Arrow
CSV_SUFFIXES = (".csv", ".tsv", ".txt")


class _HidePyarrow(importlib.abc.MetaPathFinder):
    """A finder that says pyarrow is not installed: pandas' `try: import pyarrow` then takes its own path.
    (A None in sys.modules would not do: a Cython module's import returns it instead of failing.)"""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: object = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname == "pyarrow" or fullname.startswith("pyarrow."):
            raise ModuleNotFoundError(f"No module named {fullname!r} (hidden while pandas imports)", name=fullname)
        return None


def arrow_free_source(path: str, tables: Collection[object] = ()) -> bool:
    """Whether the run's data is one CSV file pandas reads itself (not a folder, Parquet, a database or
    several tables)."""
    p = Path(path)
    return not tables and p.suffix.lower() in CSV_SUFFIXES and p.is_file()


def import_pandas_without_arrow() -> bool:
    """Import pandas with pyarrow hidden from it; False (nothing done) if pandas or pyarrow is already
    loaded in this process, as in a Hydra multirun job that runs after another."""
    if "pandas" in sys.modules or "pyarrow" in sys.modules:
        return False
    finder = _HidePyarrow()
    sys.meta_path.insert(0, finder)
    try:
        import pandas  # noqa: F401
    finally:
        sys.meta_path.remove(finder)
    return True
