"""Every hrpred module a stage imports is one of its dvc.yaml deps.

Otherwise editing that module would not rerun the stage (a stale output).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())


def module_file(name: str) -> Path | None:
    """The file of module `name` (a .py file or a package's __init__.py), if it exists."""
    rel = ROOT / name.replace(".", "/")
    for file in (rel.with_suffix(".py"), rel / "__init__.py"):
        if file.is_file():
            return file
    return None


def is_inert(file: Path) -> bool:
    """A package __init__.py holding only a docstring and constants."""
    if file.name != "__init__.py":
        return False
    body = ast.parse(file.read_text()).body
    return all(
        isinstance(n, ast.Expr | ast.Assign) and not isinstance(getattr(n, "value", None), ast.Call)
        for n in body
    )


def hrpred_imports(path: Path, seen: set[str]) -> set[str]:
    """Files of the hrpred package imported by `path`, transitively.

    `from a.b import c` imports a/__init__.py, a/b (module or package) and, when c is a
    submodule, a/b/c; importing a module also runs every parent package's __init__.py.
    """
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module]
            names += [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if not name.startswith("hrpred"):
                continue
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                file = module_file(".".join(parts[:i]))
                if file is None:
                    continue  # an attribute (function, class), not a module
                key = str(file.relative_to(ROOT))
                if is_inert(file):
                    continue  # a package docstring (and __version__): runs no code
                if key not in seen:
                    seen.add(key)
                    hrpred_imports(file, seen)
    return seen


@pytest.mark.parametrize("stage", sorted(DVC["stages"]))
def test_stage_deps_cover_imported_modules(stage):
    deps = [d if isinstance(d, str) else next(iter(d)) for d in DVC["stages"][stage]["deps"]]
    used = hrpred_imports(ROOT / "stages" / f"{stage}.py", set())
    assert used, "the stage imports nothing from hrpred?"
    missing = [
        u
        for u in sorted(used)
        if not any(u == d or u.startswith(d.rstrip("/") + "/") for d in deps)
    ]
    assert not missing, f"add to the deps of stage {stage!r} in dvc.yaml: {missing}"
