"""Imports run one way (DESIGN.md): a loop in these arrows is a design bug, so a test guards it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("geo", "streamer", "scenes", "detectors", "inference", "mapping", "console", "imminence")
# package -> top-level packages of ours it may import; geo (grid geometry, vocabularies) is the bottom
# package open to every stage, and the scene generator sits above the backbone it writes for.
ALLOWED = {
    "geo": set(),
    "detectors": {"geo"},
    "streamer": {"detectors", "geo"},
    "scenes": {"streamer", "detectors", "geo"},
    "inference": {"streamer", "geo"},
    "mapping": {"streamer", "geo"},
    "console": {"streamer", "scenes", "detectors", "inference", "mapping", "geo"},
    "imminence": {"streamer", "scenes", "detectors", "inference", "mapping", "console", "geo"},
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
            bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)


def test_nothing_imports_the_scene_generator_from_below() -> None:
    """The generator is a tool for datasets: no backbone, detector, scoring or mapping module needs it."""
    bad = [f"{path.relative_to(ROOT)} imports {name}"
           for package in ("geo", "streamer", "detectors", "inference", "mapping")
           for path in sorted((ROOT / package).rglob("*.py"))
           for name in _imports(path) if name.split(".")[0] == "scenes"]
    assert not bad, "\n".join(bad)


def test_benchmarks_and_tests_take_the_concept_engine_from_streamer() -> None:
    """`imminence concepts` is argument parsing and printing only: the offline analysis, labelling and evaluation
    it runs live in :mod:`streamer.concept_runs`, which benchmarks and tests import instead of the CLI module."""
    bad = [f"{path.relative_to(ROOT)} imports {name}"
           for folder in ("bench", "tests")
           for path in sorted((ROOT / folder).rglob("*.py"))
           for name in _imports(path) if name == "imminence.commands.concepts"]
    assert not bad, "\n".join(bad)
