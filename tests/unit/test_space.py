"""Search spaces as data (search_spaces/<key>.yaml): parsing, `when:` conditions, defaults, portfolios."""
from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from automl.errors import UserError
from automl.search import space as sp

from ..conftest import SPACE_DIR

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _write(tmp_path: Path, key: str, text: str) -> Path:
    (tmp_path / f"{key}.yaml").write_text(text)
    return tmp_path


def _trials(n: int, seed: int = 0):
    """n fresh trials of one study (RandomSampler), told 0.0 once the caller is done with each."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(n):
        trial = study.ask()
        yield trial
        study.tell(trial, 0.0)


FAM = (
    "penalty: {type: categorical, choices: [ridge, elasticnet], default: ridge}\n"
    "l1_ratio: {type: float, low: 0.1, high: 1.0, default: 0.5, when: {penalty: elasticnet}}\n"
    "C: {type: float, low: 0.01, high: 10, log: true, default: 1.0, when: {task: [binary, multiclass]}}\n"
    "depth: {type: int, low: 2, high: 9, default: 4}\n"
)


def test_the_space_parses_into_typed_parameters_in_file_order(tmp_path):
    space = sp.load_space("fam", _write(tmp_path, "fam", FAM))
    assert [p.name for p in space] == ["penalty", "l1_ratio", "C", "depth"]
    pen, l1, c, depth = space
    assert pen.type == "categorical" and pen.choices == ("ridge", "elasticnet") and pen.when == {}
    assert l1.when == {"penalty": ("elasticnet",)} and not l1.log
    assert c.log and c.when == {"task": ("binary", "multiclass")}
    assert depth.type == "int" and (depth.low, depth.high, depth.default) == (2, 9, 4)


def test_suggest_prefixes_names_and_uses_the_declared_distributions(tmp_path):
    space = sp.load_space("fam", _write(tmp_path, "fam", FAM))
    trial = next(_trials(1))
    sp.suggest(trial, space, "fam", {"task": "binary"})
    dist = trial.distributions
    assert set(dist) >= {"fam.penalty", "fam.C", "fam.depth"}
    assert dist["fam.C"] == FloatDistribution(0.01, 10.0, log=True)
    assert dist["fam.depth"] == IntDistribution(2, 9)
    assert dist["fam.penalty"] == CategoricalDistribution(["ridge", "elasticnet"])


def test_when_conditions_make_parameters_conditional(tmp_path):
    space = sp.load_space("fam", _write(tmp_path, "fam", FAM))
    seen = set()
    for trial in _trials(40):
        chosen = sp.suggest(trial, space, "fam", {"task": "regression"})
        assert "C" not in chosen  # task condition does not hold
        assert ("l1_ratio" in chosen) == (chosen["penalty"] == "elasticnet")  # child exists only with its parent
        assert set(trial.params) == {f"fam.{k}" for k in chosen}  # inactive parameters are never suggested
        assert 0.1 <= chosen.get("l1_ratio", 0.5) <= 1.0 and 2 <= chosen["depth"] <= 9
        seen.add(chosen["penalty"])
    assert seen == {"ridge", "elasticnet"}
    for trial in _trials(10, seed=1):
        assert "C" in sp.suggest(trial, space, "fam", {"task": "multiclass"})


def test_defaults_honour_when_and_overrides(tmp_path):
    space = sp.load_space("fam", _write(tmp_path, "fam", FAM))
    assert sp.defaults(space, "fam", {"task": "binary"}) == {"fam.penalty": "ridge", "fam.C": 1.0, "fam.depth": 4}
    # an override that activates a child brings the child's default along
    assert sp.defaults(space, "fam", {"task": "regression"}, {"penalty": "elasticnet", "depth": 7}) == {
        "fam.penalty": "elasticnet", "fam.l1_ratio": 0.5, "fam.depth": 7}


def test_an_unset_context_key_makes_a_when_false(tmp_path):
    space = sp.load_space("fam", _write(tmp_path, "fam", FAM))
    assert "fam.C" not in sp.defaults(space, "fam", {})


@pytest.mark.parametrize("text,match", [
    ("a: {type: float, low: 2, high: 1}", "low < high"),
    ("a: {type: float, low: 1}", "low < high"),
    ("a: {type: foo}", "needs type"),
    ("a: 3", "needs type"),
    ("a: {type: int, low: 0, high: 5, log: true}", "log range"),
    ("a: {type: categorical, choices: [x], default: y}", "not among the choices"),
    ("a: {type: categorical}", "needs choices"),
    ("a: {type: float, low: 0, high: 1, default: 2}", "outside"),
    ("a: {type: int, low: 1, high: 5, typo: 1}", "unknown field"),
])
def test_bad_space_files_are_user_errors_naming_file_and_parameter(tmp_path, text, match):
    with pytest.raises(UserError, match=match) as e:
        sp.load_space("bad", _write(tmp_path, "bad", text))
    assert e.value.where == "bad.yaml: a"


def test_a_missing_space_file_names_search_space_dir(tmp_path):
    with pytest.raises(UserError, match="no search space file for 'nothere'") as e:
        sp.load_space("nothere", tmp_path)
    assert e.value.where == "search.space_dir"


def test_portfolio_entries_are_not_parameters_and_are_checked(tmp_path):
    text = FAM + "portfolio:\n  - {penalty: elasticnet, l1_ratio: 0.9}\n  - {depth: 8}\n"
    d = _write(tmp_path, "fam", text)
    assert [p.name for p in sp.load_space("fam", d)] == ["penalty", "l1_ratio", "C", "depth"]
    assert sp.load_portfolio("fam", d) == [{"penalty": "elasticnet", "l1_ratio": 0.9}, {"depth": 8}]
    _write(tmp_path, "fam", FAM + "portfolio:\n  - {depht: 8}\n")
    with pytest.raises(UserError, match=r"unknown parameter\(s\) \['depht'\]"):
        sp.load_portfolio("fam", d)


def test_every_shipped_space_and_portfolio_loads():
    files = sorted(SPACE_DIR.glob("*.yaml"))
    assert files, SPACE_DIR
    assert sp.DEFAULT_SPACE_DIR.resolve() == SPACE_DIR.resolve()
    for f in files:
        space = sp.load_space(f.stem)
        for entry in sp.load_portfolio(f.stem):
            names = {p.name for p in space}
            assert set(entry) <= names
            for p in space:  # portfolio values lie inside the searched ranges
                if p.name in entry and p.type != "categorical":
                    assert float(p.low) <= float(entry[p.name]) <= float(p.high), (f.name, p.name)


def _pre(context: dict, n: int = 40) -> list[dict]:
    space = sp.load_space("preprocessing")
    context = {"high_cardinality": False, **context}  # automl/search/objective.py context_for sets it
    return [sp.suggest(t, space, "pre", dict(context)) for t in _trials(n)]


def test_preprocessing_space_follows_the_family_tags():
    # a tree family that handles NaN itself: no scaling choices; imputation only when native NaN is off
    for chosen in _pre({"task": "binary", "needs_scaling": False, "handles_nan": True, "native_nan": False}):
        assert not {"scaler", "outliers", "skew_log"} & set(chosen)
        assert ("num_impute" in chosen) == (chosen["native_nan"] is False)
        assert ("missing_indicator" in chosen) == (chosen["native_nan"] is False)
    # a family that needs scaling and imputation (the engine puts native_nan=False in the context)
    for chosen in _pre({"task": "regression", "needs_scaling": True, "handles_nan": False, "native_nan": False}):
        assert "native_nan" not in chosen and {"scaler", "outliers", "num_impute"} <= set(chosen)


def test_multiclass_never_samples_target_encoding():
    encodings = {c["cat_encoding"] for c in _pre({"task": "multiclass", "needs_scaling": False,
                                                  "handles_nan": False, "native_nan": False}, n=60)}
    assert encodings == {"onehot", "ordinal"}
    encodings = {c["cat_encoding"] for c in _pre({"task": "binary", "needs_scaling": False,
                                                  "handles_nan": False, "native_nan": False}, n=60)}
    assert encodings == {"onehot", "ordinal", "target"}
    encodings = {c["cat_encoding"] for c in _pre({"task": "multiclass", "needs_scaling": False, "handles_nan": False,
                                                  "native_nan": False, "high_cardinality": True}, n=60)}
    assert encodings == {"onehot", "ordinal"}
