from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gate_agent.store import Store
from gate_agent.store_schema import MIGRATIONS


def applied(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]


def test_migrations_are_recorded_and_idempotent_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite"
    Store(path).close()
    names = applied(path)
    assert names == [m.name for m in MIGRATIONS._migrations]
    with Store(path) as store:
        store.set_state("k", 1)
    assert applied(path) == names
    with Store(path) as store:
        assert store.get_state("k") == 1


def test_file_store_uses_wal_and_full_sync(tmp_path: Path) -> None:
    with Store(tmp_path / "agent.sqlite") as store:
        writer = store._db.writer
        assert writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert writer.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_close_is_safe_twice_and_closed_store_refuses(tmp_path: Path) -> None:
    store = Store(tmp_path / "agent.sqlite")
    store.close()
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        store.set_state("k", 1)
