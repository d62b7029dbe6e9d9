"""The package's structure rules: no import circle inside hrpred/, no module over 500 lines,
and serving (`hrpred.serve`, `hrpred.bundle`) never imports the exporter (`hrpred.export`).

Every import statement counts, wherever it is: at module level, inside a function (a deferred
import hides a circle, it does not remove it) and under `if TYPE_CHECKING:` (a circle of
types is still two modules that cannot be understood, tested or moved apart). An import names
the module of its dotted name (the longest prefix that is a module of the package) and, for
`from M import n`, also M.n when that is a submodule. The package `__init__` that Python runs
first is not counted as an edge: the package modules hold docstrings only, except
`hrpred.simulate`'s public names.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hrpred"
MAX_LINES = 500


def module_name(path: Path, root: Path) -> str:
    """`hrpred/serve/cli.py` -> `hrpred.serve.cli`; a package's `__init__.py` -> its name."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(package: Path) -> dict[str, Path]:
    """Every module of the package directory `package` (name -> file)."""
    return {module_name(p, package.parent): p for p in sorted(package.rglob("*.py"))}


def _absolute(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    """The absolute module a `from` import names (relative imports resolved from `name`)."""
    if not node.level:
        return node.module or ""
    base = name.split(".") if is_package else name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_modules(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The package's modules that module `name` (file `path`) imports, other than itself."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):  # every nesting level
        if isinstance(node, ast.Import):
            dotted = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, name, is_package)
            dotted = [module, *(f"{module}.{a.name}" for a in node.names)]
        else:
            continue
        for d in dotted:
            parts = d.split(".")
            target = next(
                (".".join(parts[:i]) for i in range(len(parts), 0, -1)
                 if ".".join(parts[:i]) in modules),
                None,
            )  # fmt: skip
            if target is not None and target != name:
                found.add(target)
    return found


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (see the module doc for what counts)."""
    modules = package_modules(package)
    return {name: imported_modules(path, name, modules) for name, path in modules.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of `graph`: its strongly connected components of more than one
    module (or a module importing itself), each sorted, sorted by first member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def _describe(graph: dict[str, set[str]], cycle: list[str]) -> str:
    members = set(cycle)
    edges = [f"{a} -> {b}" for a in cycle for b in sorted(graph[a] & members)]
    return "; ".join(edges)


# --------------------------------------------------------------------------- the finder itself


def test_cycle_finder_on_a_synthetic_graph() -> None:
    graph = {
        "a": {"b"},
        "b": {"c", "d"},
        "c": {"a"},  # a -> b -> c -> a
        "d": {"e"},
        "e": set(),
        "f": {"f"},  # a module importing itself
        "g": {"h"},
        "h": {"g", "e"},  # g <-> h
    }
    assert import_cycles(graph) == [["a", "b", "c"], ["f"], ["g", "h"]]
    graph["c"] = set()
    graph["h"] = {"e"}
    graph["f"] = set()
    assert import_cycles(graph) == []


def test_import_graph_counts_every_kind_of_import(tmp_path: Path) -> None:
    """Module level, inside functions, under TYPE_CHECKING, relative, `from pkg import sub`."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""pkg"""\n')
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import pkg.b\nimport numpy\n")
    (pkg / "b.py").write_text("def f():\n    from pkg.sub import c\n    return c\n")
    (pkg / "sub" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..d import X\n"
    )
    (pkg / "d.py").write_text("from . import a\nfrom pkg.e import helper\n")
    (pkg / "e.py").write_text("from pkg.e import helper\n\ndef helper():\n    pass\n")
    graph = import_graph(pkg)
    assert graph == {
        "pkg": set(),
        "pkg.a": {"pkg.b"},
        "pkg.b": {"pkg.sub", "pkg.sub.c"},
        "pkg.sub": set(),
        "pkg.sub.c": {"pkg.d"},
        "pkg.d": {"pkg", "pkg.a", "pkg.e"},
        "pkg.e": set(),
    }
    assert import_cycles(graph) == [["pkg.a", "pkg.b", "pkg.d", "pkg.sub.c"]]


# --------------------------------------------------------------------------- the package


def test_no_import_circles_in_hrpred() -> None:
    graph = import_graph(PACKAGE)
    assert len(graph) > 50 and graph["hrpred.serve.cli"], "the package was not read"
    found = import_cycles(graph)
    assert not found, "import circles: " + " | ".join(_describe(graph, c) for c in found)


def imported_closure(graph: dict[str, set[str]], starts: list[str]) -> set[str]:
    """Every module that importing `starts` imports, directly or not."""
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        for w in graph[todo.pop()] - seen:
            seen.add(w)
            todo.append(w)
    return seen


def test_serving_and_the_bundle_never_import_the_exporter() -> None:
    """`hrpred.bundle` (format, runtime) is what reads a bundle; `hrpred.export` writes it and
    imports the bundle package, never the reverse, and serving needs no exporter."""
    graph = import_graph(PACKAGE)
    readers = [m for m in graph if m.startswith(("hrpred.serve", "hrpred.bundle"))]
    assert "hrpred.bundle.runtime" in readers and "hrpred.serve.predict" in readers
    assert "hrpred.bundle.runtime" in imported_closure(graph, ["hrpred.export.writer"])
    reached = imported_closure(graph, readers)
    assert not sorted(m for m in reached if m.startswith("hrpred.export"))


def test_no_hrpred_module_over_500_lines() -> None:
    sizes = {name: len(p.read_text().splitlines()) for name, p in package_modules(PACKAGE).items()}
    over = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines (split them by concern): {over}"
