"""The house rules of src/phasegate, read from the source: the core knows engines only
through the port, no import cycle, and modules that fit on a few screens."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "phasegate"

MAX_LINES = 500
MAX_ORCHESTRATOR_LINES = 400
CONCRETE_ENGINES = ("phasegate.engines.sandbox", "phasegate.engines.pulumi")
ENGINE_LIBRARIES = ("moto", "pulumi.automation")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports, at the top, in a function or for type checking
    (``from package import module`` imports that module, not the package's own code)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in MODULES else base)
                found.add(submodule)
    return found


def _phasegate_edges() -> dict[str, set[str]]:
    """Module -> the phasegate modules it imports (a name imported from a module counts
    as that module)."""
    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        targets = set()
        for imported in _imports(name, path):
            while imported and imported not in MODULES:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        edges[name] = targets
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or through others."""
    reach: dict[str, set[str]] = {}
    for start in edges:
        seen: set[str] = set()
        todo = list(edges[start])
        while todo:
            module = todo.pop()
            if module not in seen:
                seen.add(module)
                todo.extend(edges[module])
        reach[start] = seen
    groups = {frozenset(m for m in reach[s] if s in reach[m]) | {s} for s in edges if s in reach[s]}
    return sorted(sorted(g) for g in groups)


def test_the_source_is_where_the_rules_look() -> None:
    assert "phasegate.orchestrator" in MODULES and "phasegate.engines.base" in MODULES


def test_no_module_imports_one_that_imports_it_back() -> None:
    assert _cycles(_phasegate_edges()) == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_only_engines_name_a_concrete_engine_or_its_library(name: str) -> None:
    if name.startswith("phasegate.engines"):
        return
    imported = _imports(name, MODULES[name])
    wrong = sorted(
        i
        for i in imported
        for forbidden in (*CONCRETE_ENGINES, *ENGINE_LIBRARIES)
        if i == forbidden or i.startswith(forbidden + ".")
    )
    assert not wrong, f"{name} imports {wrong}: the core knows engines only through the port"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_a_module_fits_on_a_few_screens(name: str) -> None:
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    limit = MAX_ORCHESTRATOR_LINES if name == "phasegate.orchestrator" else MAX_LINES
    assert lines <= limit, f"{name} has {lines} lines (at most {limit})"


def test_no_two_test_modules_share_a_name() -> None:
    """The test directories are not packages: pytest imports each module by its file
    name, and a second one of the same name fails the run that collects both."""
    tests = SRC.parent / "tests"
    names = [path.name for path in tests.rglob("test_*.py")]
    assert len(names) > 50
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
