"""Architecture figures for the redesign note: run.py lines, largest module, import cycles among automl
modules (every import statement, function-local ones included), function-local automl imports, and
private names imported across modules."""
from __future__ import annotations

import ast
import sys
from pathlib import Path


def module_name(root: Path, f: Path) -> str:
    parts = list(f.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def main(root: Path) -> None:
    files = sorted((root / "automl").rglob("*.py"))
    mods = {module_name(root, f): f for f in files}
    graph: dict[str, set[str]] = {m: set() for m in mods}
    local = private = 0
    private_list = []
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


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve())
