from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from gate_agent.domain import EventKind, JournalEvent, ListEntry, ListKind, MatchKind
from gate_agent.store import Store

MIGRATIONS = [
    "0001_initial",
    "0002_event_confirmed_at",
    "0003_policy_and_access_lists",
    "0004_one_outbox_index",
    "0005_operator_sessions",
    "0006_stays",
    "0007_lean_journal_commit",
    "0008_access_keys",
]
# A store as the shipped migration 0001_initial left it, frozen (shipped migrations never change):
# what an upgrading lot has on disk.
STORE_0001 = Path(__file__).parent / "data" / "store-0001.sqlite3"


def applied(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]


def test_migrations_are_recorded_and_idempotent_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite"
    Store(path).close()
    names = applied(path)
    assert names[: len(MIGRATIONS)] == MIGRATIONS
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


def test_confirmed_at_migration_counts_events_sent_before_it_as_confirmed(tmp_path: Path) -> None:
    """0002 adds ``confirmed_at``: events PUBACKed under the old rule stay out of the outbox."""
    path = tmp_path / "agent.sqlite"
    shutil.copyfile(STORE_0001, path)
    with sqlite3.connect(path) as conn:
        row = "INSERT INTO events (event_id, lot_id, kind, occurred_at, sent_at) VALUES (?,?,?,?,?)"
        at = "2026-03-01T00:00:00+00:00"
        conn.execute(row, ("old-sent", "lot", "health", at, "2026-03-01T00:00:01+00:00"))
        conn.execute(row, ("old-unsent", "lot", "health", at, None))
    assert applied(path) == ["0001_initial"]
    with Store(path) as store:
        assert applied(path)[1:] == MIGRATIONS[1:]
        by_id = {e.event_id: e for e in store.events()}
        assert by_id["old-sent"].confirmed_at == by_id["old-sent"].sent_at is not None
        assert by_id["old-unsent"].confirmed_at is None
        assert store.outbox_depth() == 1
        store.journal(JournalEvent(lot_id="lot", kind=EventKind.HEALTH, event_id="new"))
        assert [e.event_id for e in store.unsent_events()] == ["old-unsent", "new"]


def test_policy_and_lists_migration_keeps_cached_entries_keyed_by_plate_and_kind(
    tmp_path: Path,
) -> None:
    """0003 re-keys list entries (the cloud's entry_id, else plate and kind) and adds the policy
    table: entries a lot cached before it stay, and are still found and replaced by plate+kind."""
    path = tmp_path / "agent.sqlite"
    shutil.copyfile(STORE_0001, path)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO list_entries (plate, kind, valid_from, valid_until, note, updated_at)"
            " VALUES ('OLD123', 'deny', NULL, '2027-01-01T00:00:00.000000+00:00', 'kept', 'x')"
        )
        conn.execute("INSERT INTO plate_keys (key, plate) VALUES ('unused', 'OLD123')")
    with Store(path) as store:
        assert applied(path) == MIGRATIONS
        [entry] = store.list_entries()
        assert (entry.plate, entry.kind, entry.note, entry.entry_id) == (
            "OLD123",
            ListKind.DENY,
            "kept",
            None,
        )
        assert entry.lanes is None and entry.category is None
        store.put_list_entry(ListEntry("OLD123", ListKind.DENY, note="replaced"))
        assert [e.note for e in store.list_entries()] == ["replaced"]
        assert store.policy is None and store.rejected_policy() is None
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM plate_keys")  # rebuilt from the rows the lookup reads
    with Store(path) as store:
        store.replace_all_reservations([])  # rebuilds plate_keys from reservations and lists
        assert store.facts_for("OLD123", 0.95).match.kind is MatchKind.EXACT


def test_one_outbox_index_keeps_the_outbox_and_writes_one_page_less(tmp_path: Path) -> None:
    """0004 drops ``events_unsent``: an upgraded lot still sends what it had not sent, in order,
    and a journal commit no longer touches a second partial index."""
    path = tmp_path / "agent.sqlite"
    shutil.copyfile(STORE_0001, path)
    with sqlite3.connect(path) as conn:
        row = "INSERT INTO events (event_id, lot_id, kind, occurred_at, sent_at) VALUES (?,?,?,?,?)"
        conn.execute(row, ("sent1", "lot", "entry", "2025-01-01T00:00:00+00:00", "2025-01-01"))
        conn.execute(row, ("unsent2", "lot", "entry", "2025-01-01T00:01:00+00:00", None))
    with Store(path) as store:
        store.journal(JournalEvent(lot_id="lot", kind=EventKind.HEALTH, event_id="new3"))
        assert [e.event_id for e in store.unsent_events()] == ["unsent2", "new3"]
        store.mark_sent(["unsent2"])
        assert [e.event_id for e in store.unsent_events()] == ["new3"]
    with sqlite3.connect(path) as conn:
        partial = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
            " AND sql LIKE '%WHERE%'"
        ).fetchall()
    assert partial == [("events_unconfirmed",)]


def test_lean_journal_and_small_pages_keep_every_row(tmp_path: Path) -> None:
    """0005 rebuilds ``events`` without AUTOINCREMENT or the unused plate index and ``presence``
    WITHOUT ROWID (columns another migration added survive); the start-up rewrites a file made
    with other pages with 1 KB pages. The outbox, its order and who is inside are unchanged."""
    path = tmp_path / "agent.sqlite"
    shutil.copyfile(STORE_0001, path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA page_size").fetchone()[0] != 1024  # the fixture has 512 B
        conn.execute("ALTER TABLE presence ADD COLUMN stay_id TEXT")  # as a later feature might
        conn.execute("INSERT INTO presence VALUES ('OLD123', 'v1', '2026-03-01', 'r1', 's1')")
        row = "INSERT INTO events (event_id, lot_id, kind, occurred_at, plate) VALUES (?,?,?,?,?)"
        for n in range(3):
            conn.execute(row, (f"old{n}", "lot", "entry", f"2026-03-01T00:0{n}:00", "OLD123"))
    with Store(path) as store:
        assert applied(path) == MIGRATIONS
        new = store.journal(JournalEvent(lot_id="lot", kind=EventKind.HEALTH, event_id="new"))
        assert [e.event_id for e in store.unsent_events()] == ["old0", "old1", "old2", new]
        assert [e.event_id for e in store.events(plate="OLD123")] == ["old2", "old1", "old0"]
        [inside] = store.inside()
        assert (inside.plate, inside.visit_id, inside.reservation_id) == ("OLD123", "v1", "r1")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA page_size").fetchone()[0] == 1024
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT max(seq) FROM events").fetchone()[0] == 4
        assert conn.execute("SELECT stay_id FROM presence").fetchall() == [("s1",)]
        schema = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))
        sequences = conn.execute("SELECT name FROM sqlite_sequence").fetchall()
    assert {"events_plate", "events_occurred"}.isdisjoint(schema) and "events_unconfirmed" in schema
    assert "AUTOINCREMENT" not in schema["events"] and ("events",) not in sequences
    assert schema["presence"].endswith("WITHOUT ROWID")


def test_a_new_store_is_made_with_small_pages(tmp_path: Path) -> None:
    with Store(tmp_path / "agent.sqlite") as store:
        assert store._db.writer.execute("PRAGMA page_size").fetchone()[0] == 1024


def test_a_big_store_keeps_its_pages_and_says_how_to_convert_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Rewriting could outlast systemd's start timeout: past the bound the file is left as it
    is (still correct, just more bytes per commit) and the log says what to do."""
    path = tmp_path / "agent.sqlite"
    shutil.copyfile(STORE_0001, path)
    monkeypatch.setattr("gate_agent.store._connections.REWRITE_MAX_BYTES", 1000)
    with Store(path) as store:
        store.journal(JournalEvent(lot_id="lot", kind=EventKind.HEALTH))
        assert store._db.writer.execute("PRAGMA page_size").fetchone()[0] == 512
        assert store._db.writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert "too big to rewrite at start-up" in caplog.text
