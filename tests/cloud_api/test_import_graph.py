"""The cloud package's import structure: no cycles, the environment read in one place, and the
Stripe SDK loaded only where Stripe is configured."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "cloud_api"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, importer: str, modules: set[str]) -> set[str]:
    """The ``cloud_api`` modules that importing ``importer`` (at ``path``) runs, at module level
    or inside functions: the ones it names, and the packages above them (``a.b._c`` runs
    ``a.b``'s ``__init__`` first) except its own, which are already running."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name not in modules:
                continue
            found.add(name)
            parent = name.rpartition(".")[0]
            while parent and not importer.startswith(parent + "."):
                found.add(parent)
                parent = parent.rpartition(".")[0]
    return found - {importer}


def _graph() -> dict[str, set[str]]:
    files = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    modules = set(files)
    return {name: _imports(path, name, modules) for name, path in files.items()}


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
    assert _imports(
        PACKAGE / "lot_sync" / "_relay.py",
        "cloud_api.lot_sync._relay",
        {"cloud_api.lot_sync", "cloud_api.lot_sync._mqtt", "cloud_api.changes"},
    ) == {"cloud_api.lot_sync._mqtt", "cloud_api.changes"}


def test_cloud_modules_import_each_other_without_a_cycle() -> None:
    graph = _graph()
    assert "cloud_api.outbox" in graph and "cloud_api.lot_sync._relay" in graph
    assert _cycle(graph) is None


def test_only_the_settings_loader_reads_the_environment() -> None:
    readers = sorted(
        str(path.relative_to(ROOT))
        for path in PACKAGE.rglob("*.py")
        if "os.environ" in path.read_text() or "getenv" in path.read_text()
    )
    assert readers == ["cloud_api/settings.py"]


def test_a_local_provider_worker_does_not_load_the_stripe_sdk(sqlite_url: str) -> None:
    code = f"""
import sys
from cloud_api.daemons import build_worker
from cloud_api.db import make_engine, make_sessionmaker
from cloud_api.settings import load_settings
settings = load_settings({{"PARKGATE_DATABASE_URL": {sqlite_url!r}}})
worker = build_worker(settings, make_sessionmaker(make_engine(settings.database_url)))
assert worker.run_once() == 0
loaded = sorted(name for name in sys.modules if name == "stripe" or name.startswith("stripe."))
print(",".join(loaded) or "none")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "none"
