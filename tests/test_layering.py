"""Imports run one way (DESIGN.md): a loop in these arrows is a design bug, so a test guards it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("streamer", "detectors", "inference", "mapping", "console", "imminence")
# package -> top-level packages of ours it may import (mapping.grid is open to every stage)
ALLOWED = {
    "detectors": set(),
    "streamer": {"detectors", "mapping.grid"},
    "inference": {"streamer", "mapping.grid"},
    "mapping": {"streamer"},
    "console": {"streamer", "detectors", "inference", "mapping"},
    "imminence": {"streamer", "detectors", "inference", "mapping", "console"},
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_the_design_allows(package: str) -> None:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            if top not in STAGES or top == package:
                continue
            if top in ALLOWED[package] or any(name == a or name.startswith(a + ".") for a in ALLOWED[package]):
                continue
            if package != "mapping" and name.startswith("mapping.grid"):
                continue
            bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)


def test_grid_imports_no_stage() -> None:
    names = _imports(ROOT / "mapping" / "grid.py")
    assert not [n for n in names if n.split(".")[0] in STAGES and n != "mapping.grid"]
