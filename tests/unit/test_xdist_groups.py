"""The README's test command keeps each module's tests on one pytest-xdist worker (`--dist loadgroup`, the
groups tests/conftest.py gives): a module-scoped fixture (a real run, the wheel's venv, an `mlflow server`) is
built once, and tests/distributed's tests never use their one PostgreSQL database at the same time. With pytest
9.2, pytest-xdist 3.8's loadgroup stopped grouping without a word (pytest-xdist issue #1386): the fresh-clone
CI built the wheel's venv, the e2e runs and the MLflow server once on each worker. pyproject.toml pins pytest
below 9.2; this test fails where the grouping is not in effect."""
from __future__ import annotations

import pytest


def test_a_module_runs_on_one_xdist_worker(request: pytest.FixtureRequest):
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("runs under the README's test command (pytest-xdist, --dist loadgroup)")
    # xdist carries the group to its scheduler as a suffix of the node id
    assert request.node.nodeid.endswith("@tests/unit/test_xdist_groups.py"), request.node.nodeid
