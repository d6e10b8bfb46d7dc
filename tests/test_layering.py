"""Who may import whom: the wire contract stands alone, the agent and the cloud never import
each other, and no package's modules import each other in a cycle."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "parkgate_protocol",
    "gate_agent",
    "cloud_api",
    "hardware",
    "devservices",
    "bench",
    "demo",
)
PRODUCT = ("parkgate_protocol", "gate_agent", "cloud_api", "hardware")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> set[str]:
    """Absolute names a module imports at run time (``TYPE_CHECKING`` blocks left out)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    package = (
                        module.rsplit(".", node.level)[0] if path.stem != "__init__" else module
                    )
                    if node.level > 1 and path.stem == "__init__":
                        package = module.rsplit(".", node.level - 1)[0]
                    base = f"{package}.{base}" if base else package
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    visit([child])

    visit(tree.body)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {
        _module_name(path): path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    }
    return {
        name: {imported for imported in _imports(path, name) if imported in modules}
        for name, path in modules.items()
    }


GRAPH = _graph()


@pytest.mark.parametrize(
    ("importer", "forbidden"),
    [
        ("cloud_api", "gate_agent"),
        ("gate_agent", "cloud_api"),
        ("hardware", "cloud_api"),
        ("parkgate_protocol", "gate_agent"),
        ("parkgate_protocol", "cloud_api"),
        ("parkgate_protocol", "hardware"),
        *((product, dev) for product in PRODUCT for dev in ("devservices", "bench", "demo")),
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
        for name in _imports(path, _module_name(path)):
            assert name.split(".")[0] in allowed, f"{path.name} imports {name}"


def test_no_import_cycles() -> None:
    """Tarjan's strongly connected components over the module graph; every one must be a single
    module (a package's ``__init__`` re-exporting its own modules is not a cycle)."""
    edges = {
        name: {t for t in targets if not name.startswith(t + ".") and t != name}
        for name, targets in GRAPH.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def strongconnect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                strongconnect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(edges):
        if node not in index:
            strongconnect(node)
    assert cycles == []


@pytest.mark.parametrize("package", [*PRODUCT, "devservices", "bench", "demo"])
def test_nothing_outside_the_tests_imports_them(package: str) -> None:
    for path in (ROOT / package).rglob("*.py"):
        imported = _imports(path, _module_name(path))
        assert not {name for name in imported if name.split(".")[0] == "tests"}, path
