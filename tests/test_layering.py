"""Who may import whom: the wire contract stands alone, the agent and the cloud never import each
other, nothing outside the tests imports them, and no modules import each other in a cycle.

An import counts wherever it is written (module level, inside a function, under
``TYPE_CHECKING``): each is a dependency a reader has to follow."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("parkgate_protocol", "gate_agent", "cloud_api", "hardware")
TOOLS = ("devservices", "bench", "demo")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _named(path: Path) -> set[str]:
    """Every absolute module name an ``import`` in the file names."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _imports(path: Path, importer: str, modules: set[str]) -> set[str]:
    """The known modules that importing ``importer`` runs: the ones it names, and the packages
    above them (``a.b._c`` runs ``a.b``'s ``__init__`` first) except its own, already running."""
    found: set[str] = set()
    for name in _named(path) & modules:
        found.add(name)
        parent = name.rpartition(".")[0]
        while parent and not importer.startswith(parent + "."):
            found.add(parent)
            parent = parent.rpartition(".")[0]
    return {name for name in found if not importer.startswith(name + ".")} - {importer}


def _files(packages: tuple[str, ...]) -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in packages
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    }


FILES = _files(PRODUCT + TOOLS)
GRAPH = {name: _imports(path, name, set(FILES)) for name, path in FILES.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "p": {"p._x"}, "p._x": set()}) is None


def test_no_import_cycles() -> None:
    assert "cloud_api.outbox" in GRAPH and "gate_agent.store._store" in GRAPH
    assert _cycle(GRAPH) is None


@pytest.mark.parametrize(
    ("importer", "forbidden"),
    [
        ("cloud_api", "gate_agent"),
        ("gate_agent", "cloud_api"),
        ("hardware", "cloud_api"),
        ("parkgate_protocol", "gate_agent"),
        ("parkgate_protocol", "cloud_api"),
        ("parkgate_protocol", "hardware"),
        *((product, tool) for product in PRODUCT for tool in TOOLS),
    ],
)
def test_packages_keep_to_their_side(importer: str, forbidden: str) -> None:
    offenders = {
        name: sorted(t for t in targets if t.split(".")[0] == forbidden)
        for name, targets in GRAPH.items()
        if name.split(".")[0] == importer
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_protocol_needs_only_pydantic_and_the_standard_library() -> None:
    allowed = set(sys.stdlib_module_names) | {"pydantic", "parkgate_protocol", "__future__"}
    for path in (ROOT / "parkgate_protocol").rglob("*.py"):
        for name in _named(path):
            assert name.split(".")[0] in allowed, f"{path.name} imports {name}"


@pytest.mark.parametrize("package", PRODUCT + TOOLS)
def test_nothing_outside_the_tests_imports_them(package: str) -> None:
    for path in (ROOT / package).rglob("*.py"):
        assert not {n for n in _named(path) if n.split(".")[0] == "tests"}, path
