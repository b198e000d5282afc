"""Architecture figures and the habits CI holds: run.py lines, largest module, import cycles among automl
modules (every import statement, function-local ones included), function-local automl imports, and
private names imported across modules.

    python .ci/arch_metrics.py          # print the figures
    python .ci/arch_metrics.py --check  # exit 1 if a habit is broken (run by .ci/run)
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path


def module_name(root: Path, f: Path) -> str:
    parts = list(f.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


# Function-local automl imports that stay, and why: each defers a heavy third-party library that the
# importing module must not load at import time.
DEFERRED = {
    ("automl", "automl.run"): "`import automl` stays light; the engine loads scikit-learn, Optuna, onnx",
    ("automl", "automl.api"): "automl.fit/load via module __getattr__: `import automl` stays light; api loads the engine",
    ("automl.cli", "automl.run"): "a config error or --help is told before the engine is imported",
    ("automl.estimators.hgb", "automl.estimators.hgb_float32"): "subclasses scikit-learn; the registry loads none",
    ("automl.estimators.knn", "automl.estimators.knn_tiefree"): "subclasses scikit-learn; the registry loads none",
    ("automl.export.onnx", "automl.export.converters"): "skl2onnx (~22 MB): registered by load_converters, once "
    "per process, where a graph is first needed",
    ("automl.search.objective", "automl.export.onnx"): "onnx and skl2onnx (~34 MB): a joining worker loads them "
    "only in the trials that export",
    ("automl.stages.prepare", "automl.export.onnx"): "skl2onnx (~22 MB): loaded by the stage that needs it, "
    "after the path checks, so a wrong path is still told in about a second",
    ("automl.stages.finish", "automl.export.onnx"): "onnx, onnxruntime and skl2onnx (~54 MB): loaded once the "
    "search is over (or by the lean fork while it runs), so that no trial forked during the search holds them",
    ("automl.stages.finish", "automl.stages.final"): "the final stage is imported when the search is over",
    ("automl.stages.finish", "automl.stages.outputs"): "the outputs stage is imported when the search is over",
    ("automl.cli", "automl.stages.finish"): "imported in the lean fork only (automl/lean_fork.py), never by the "
    "driver",
    ("automl.tracking.mlflow_tracking", "automl.tracking.onnx_pyfunc"): "subclasses mlflow's PythonModel; a run "
    "without tracking=mlflow never loads mlflow",
}
MAX_LINES, MAX_RUN_LINES = 400, 150


def main(root: Path, check: bool = False) -> int:
    files = sorted((root / "automl").rglob("*.py"))
    mods = {module_name(root, f): f for f in files}
    graph: dict[str, set[str]] = {m: set() for m in mods}
    local = private = 0
    private_list = []
    local_list = []
    for m, f in mods.items():
        tree = ast.parse(f.read_text())
        pkg = m if f.name == "__init__.py" else m.rsplit(".", 1)[0]
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            targets: list[tuple[str, list[str]]] = []
            if isinstance(node, ast.Import):
                targets = [(a.name, []) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(pkg.split(".")[: len(pkg.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [(base, [a.name for a in node.names])]
            for tgt, names in targets:
                if not tgt.startswith("automl"):
                    continue
                # `from automl.x import y` where y is a module counts as an import of automl.x.y
                deps = [f"{tgt}.{n}" if f"{tgt}.{n}" in mods else tgt for n in names] or [tgt]
                for d in deps:
                    while d not in mods and "." in d:
                        d = d.rsplit(".", 1)[0]
                    if d in mods and d != m:
                        graph[m].add(d)
                in_top = id(node) in top or any(id(node) in {id(c) for c in ast.walk(t)} for t in tree.body
                                                if isinstance(t, (ast.If, ast.Try)))
                if not in_top:
                    local += 1
                    local_list.append((m, tgt))
                for n in names:
                    if n.startswith("_") and not n.startswith("__") and f"{tgt}.{n}" not in mods:
                        private += 1
                        private_list.append(f"{m}: from {tgt} import {n}")
    # strongly connected components (Tarjan) = import circles
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    sccs: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    # package __init__ re-exports make a package and its modules mutually dependent; that is not a circle
    sizes = sorted(((len(f.read_text().splitlines()), m) for m, f in mods.items()), reverse=True)
    run_py = root / "automl" / "run.py"
    print(f"run.py lines: {len(run_py.read_text().splitlines())}")
    print(f"largest modules: {sizes[:5]}")
    print(f"import circles (strongly connected groups): {len(sccs)}")
    for c in sccs:
        print("   ", " <-> ".join(c))
    print(f"function-local automl imports: {local}")
    print(f"private names imported across modules: {private}")
    for p in private_list:
        print("   ", p)
    if not check:
        return 0
    # cli dispatches each verb to automl.commands.<verb> by name (importlib), which ast does not see
    problems = [f"function-local import of {t} in {m} (move it to the module top, or defer a heavy library "
                "and list it in DEFERRED with why)" for m, t in local_list if (m, t) not in DEFERRED]
    problems += [f"import circle: {' <-> '.join(c)}" for c in sccs if c != ["automl", "automl.run"]]
    problems += [f"private name imported across modules: {p}" for p in private_list]
    problems += [f"{m} has {n} lines (> {MAX_LINES}): split it by idea" for n, m in sizes if n > MAX_LINES]
    n_run = len(run_py.read_text().splitlines())
    if n_run > MAX_RUN_LINES:
        problems.append(f"run.py has {n_run} lines (> {MAX_RUN_LINES}): the stages belong in automl/stages/")
    for p in problems:
        print("error:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--check"]
    sys.exit(main(Path(args[0] if args else ".").resolve(), check="--check" in sys.argv))
