"""What each conf option sets reaches the typed RunConfig, and a rejected command touches no artefact."""
from __future__ import annotations

from enum import Enum
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from automl.cli import to_run_config
from automl.config.schema import GROUPS, RunConfig, register_configs
from automl.config.validate import validate_config
from automl.errors import UserError

from ..conftest import CONF_DIR, DATA, error_lines

OPTIONS = [(g.name, f.stem) for g in sorted(CONF_DIR.iterdir()) if g.is_dir() for f in sorted(g.glob("*.yaml"))]


def _compose(*overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_every_conf_group_has_a_schema_and_options():
    groups = {g for g, _ in OPTIONS}
    assert groups == set(GROUPS), "a conf group without a schema in automl/config/schema.py, or the reverse"


@pytest.mark.parametrize("group,option", OPTIONS)
def test_each_option_sets_the_values_in_its_file(group: str, option: str):
    config = to_run_config(_compose(f"{group}={option}"))
    assert isinstance(config, RunConfig)
    validate_config(config)  # every shipped option is a valid run
    raw = yaml.safe_load((CONF_DIR / group / f"{option}.yaml").read_text())
    assert raw.get("defaults") == [f"base_{group}", "_self_"], "options extend their schema"
    node = getattr(config, group)
    for key, value in raw.items():
        if key == "defaults" or (isinstance(value, str) and value.startswith("${")):
            continue
        got = getattr(node, key)
        assert _same(got.value if isinstance(got, Enum) else got, value), (group, option, key)


def _same(got, value) -> bool:
    """Typed value vs the YAML value; nested dataclasses/dicts/lists compared key by key, ${...} skipped."""
    import dataclasses

    if isinstance(value, str) and value.startswith("${"):
        return True
    if dataclasses.is_dataclass(got):
        got = dataclasses.asdict(got)
    if isinstance(value, dict):
        return isinstance(got, dict) and all(k in got and _same(got[k], v) for k, v in value.items())
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return len(got) == len(value) and all(_same(g, v) for g, v in zip(got, value, strict=True))
    return got == value


def test_overrides_reach_the_typed_config():
    config = to_run_config(_compose("budget.time_s=33", "task.type=regression", "estimators.include=[knn]",
                                    "search=random", "seed=7", f"data.path={DATA / 'slid_wages_600.csv'}"))
    assert config.budget.time_s == 33.0 and isinstance(config.budget.time_s, float)
    assert config.task.type.value == "regression" and config.estimators.include == ["knn"]
    assert config.search.sampler == "random" and config.seed == 7
    assert config.data.name == "slid_wages_600"  # derived from the path


def test_a_key_added_with_plus_is_rejected_naming_it():
    with pytest.raises(UserError) as e:
        to_run_config(_compose("+search.foo=1"))
    assert e.value.where == "search.foo" and "n_trials" not in str(e.value) and "sampler" in str(e.value)


@pytest.mark.parametrize("overrides,needle", [
    (["budget.time_s=0"], "budget.time_s"),
    (["data.path=/no/such/file.csv"], "data.path"),
    ([f"data.path={DATA / 'medpar_600.csv'}", "task.target=dead"], "task.target"),
    ([f"data.path={DATA / 'medpar_600.csv'}", "task.target=died", "task.metric=rmse"], "task.metric"),
    (["estimators.include=[linear,catbost]"], "estimators.include"),
])
def test_a_rejected_command_leaves_an_existing_run_folder_as_it_was(cli, tmp_path: Path, overrides, needle):
    run = tmp_path / "earlier_run"
    run.mkdir()
    before = {"model.onnx": b"earlier good model", "manifest.json": b'{"status": "COMPLETE"}\n',
              "leaderboard.csv": b"rank,trial\n1,0\n"}
    for name, content in before.items():
        (run / name).write_bytes(content)
    code, _, err = cli(*overrides, run_dir=run)
    assert code == 2, err[-2000:]
    assert "Traceback" not in err
    errors = error_lines(err)
    assert len(errors) == 1 and errors[0].startswith(f"error: {needle}"), err[-2000:]
    for name, content in before.items():
        assert (run / name).read_bytes() == content, f"{name} was rewritten by a rejected command"
    assert not any(p.name.endswith(".tmp") for p in run.iterdir())
