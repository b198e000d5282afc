"""Where the files the engine ships live: the Hydra configs (`conf/`) and the search spaces (`search_spaces/`).

In the repository both stay top-level, beside the `automl/` package. A wheel carries them inside the
package as `automl/conf` and `automl/search_spaces` (pyproject.toml `[tool.setuptools] package-dir`), so an
installed engine runs from any folder. The folder inside the package wins; a source checkout (editable
install, or PYTHONPATH) has none and reads the top-level one.
"""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def shipped_dir(name: str) -> Path:
    """`automl/<name>` of an installed wheel, else `<repository>/<name>` of a source checkout."""
    inside = PACKAGE_DIR / name
    return inside if inside.is_dir() else PACKAGE_DIR.parent / name


CONF_DIR = shipped_dir("conf")  # Hydra's primary config directory (config.yaml and its groups)
SPACE_DIR = shipped_dir("search_spaces")  # search_spaces/<key>.yaml, unless search.space_dir names another
