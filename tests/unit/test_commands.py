"""The verbs at the edge: each `automl <verb> --help` works, and only automl/commands and automl/cli.py read argv."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from automl.cli import SUBCOMMANDS
from tests.cli_runner import ROOT, run_cli

PACKAGE = ROOT / "automl"


@pytest.mark.parametrize("verb", SUBCOMMANDS)
def test_every_verb_has_help(verb: str) -> None:
    r = run_cli(verb, "--help", timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: automl {verb}"), r.stdout


def test_every_verb_is_a_commands_module() -> None:
    modules = {p.stem for p in (PACKAGE / "commands").glob("*.py") if p.stem != "__init__"}
    assert modules == set(SUBCOMMANDS)


def _reads_argv(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names):
            found.append(f"line {node.lineno}: import argparse")
        elif isinstance(node, ast.ImportFrom) and node.module == "argparse":
            found.append(f"line {node.lineno}: from argparse import ...")
        elif (isinstance(node, ast.Attribute) and node.attr == "argv" and isinstance(node.value, ast.Name)
              and node.value.id == "sys"):
            found.append(f"line {node.lineno}: sys.argv")
    return found


def test_only_commands_and_cli_parse_argv() -> None:
    offenders = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        rel = f.relative_to(PACKAGE)
        if rel.parts[0] == "commands" or rel == Path("cli.py"):
            continue
        found = _reads_argv(ast.parse(f.read_text(encoding="utf-8")))
        if found:
            offenders[str(rel)] = found
    assert not offenders, f"library modules that parse argv (move it to automl/commands/): {offenders}"
