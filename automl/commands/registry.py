"""`automl registry push|list|promote|rollback`: the versioned model store (automl/serving/model_store.py)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from automl.serving.model_store import check_stage, default_root, list_models, promote, push, rollback, version_number


def _print_models(root: Path, indexes: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(indexes, indent=2))
        return
    if not indexes:
        print(f"no models in the registry at {root}")
        return
    for index in indexes:
        tags: dict[int, list[str]] = {}
        for stage, stack in index["stages"].items():
            if stack:
                tags.setdefault(stack[-1], []).append(stage)
        print(f"{index['name']}")
        print(f"  {'version':<8} {'stages':<22} {'sha256':<14} {'pushed_at':<25} {'task':<11} {'metric':<10} holdout")
        for v in index["versions"]:
            score = v.get("holdout_score")
            print(f"  v{v['version']:<7} {','.join(tags.get(v['version'], [])) or '-':<22} {v['sha256'][:12]:<14} "
                  f"{v['pushed_at']:<25} {v.get('task') or '-':<11} {v.get('metric') or '-':<10} "
                  f"{'-' if score is None else f'{score:.5g}'}")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="automl registry",
                                 description="Versioned model registry: push, list, promote, rollback.")
    ap.add_argument("--root", default=None, help="registry folder (default: $AUTOML_REGISTRY or ~/.automl/registry)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("push", help="store a run folder as the next version of NAME")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--name", required=True)
    p.add_argument("--stage", default=None, help="also promote the version to this stage (e.g. production)")
    p = sub.add_parser("list", help="versions and stages")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("promote", help="make VERSION the current version of a stage")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION")
    p.add_argument("--stage", default="production")
    p = sub.add_parser("rollback", help="return a stage to the version it held before the current one")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--stage", default="production")
    for sp in sub.choices.values():
        sp.add_argument("--root", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    root = Path(a.root).expanduser() if a.root else default_root()
    if a.cmd == "push":
        version, created = push(Path(a.run_dir), a.name, root, a.stage)
        print(f"{'pushed' if created else 'already registered:'} {a.name}@v{version}"
              + (f" (stage {a.stage})" if a.stage else "") + f" in {root}")
    elif a.cmd == "list":
        _print_models(root, list_models(root, a.name), a.json)
    elif a.cmd == "promote":
        version = version_number(a.version, "VERSION")
        previous = promote(root, a.name, version, check_stage(a.stage))
        print(f"{a.name}@{a.stage}: v{version}" + (f" (was v{previous})" if previous is not None else ""))
    elif a.cmd == "rollback":
        current, now = rollback(root, a.name, a.stage)
        print(f"{a.name}@{a.stage}: v{now} (rolled back from v{current})")
    return 0
