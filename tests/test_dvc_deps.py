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


def hrpred_imports(path: Path, seen: set[str]) -> set[str]:
    """Files of the hrpred package imported by `path`, transitively."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if not name.startswith("hrpred"):
                continue
            rel = name.replace(".", "/")
            candidates = [ROOT / f"{rel}.py", *sorted((ROOT / rel).glob("*.py"))]
            for file in candidates:
                key = str(file.relative_to(ROOT))
                if file.is_file() and key not in seen:
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
