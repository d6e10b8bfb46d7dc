"""Sent and confirmed marks: in memory at once, on disk with the next commit (or never, for
PUBACKs); what a crash loses is only a re-send, which the cloud deduplicates."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gate_agent.domain import Direction, EventKind, JournalEvent
from gate_agent.store import Store
from gate_agent.store._store import CONFIRM_FLUSH_AT


def entry(plate: str) -> JournalEvent:
    return JournalEvent(
        lot_id="lot1", kind=EventKind.ENTRY, lane_id="in1", direction=Direction.ENTRY, plate=plate
    )


def confirmed_on_disk(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT event_id FROM events WHERE confirmed_at IS NOT NULL")
        return {row[0] for row in rows}


def test_a_confirmation_is_written_with_the_next_journal_commit(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite"
    with Store(path) as store:
        first = store.record_pass(entry("AB123CD"), presence="enter")
        store.mark_sent([first])
        assert store.mark_confirmed([first]) == 1
        assert store.mark_confirmed([first]) == 0
        assert store.outbox_depth() == 0 and store.unsent_events() == []
        assert store.events()[0].confirmed_at is not None  # the status page sees it at once
        assert confirmed_on_disk(path) == set()  # no commit of its own
        second = store.record_pass(entry("XY999"), presence="enter")
        assert confirmed_on_disk(path) == {first}  # rode along with the next car's commit
        assert [e.event_id for e in store.unsent_events()] == [second]


def test_confirmations_are_written_at_close_and_when_many_wait(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite"
    with Store(path) as store:
        ids = [store.journal(entry(f"CAR{i}")) for i in range(CONFIRM_FLUSH_AT + 1)]
        store.mark_confirmed(ids[:-2])
        assert confirmed_on_disk(path) == set()
        store.mark_confirmed(ids[-2:-1])  # the CONFIRM_FLUSH_AT-th: a commit of their own
        assert confirmed_on_disk(path) == set(ids[:-1])
        store.mark_confirmed(ids[-1:])
    assert confirmed_on_disk(path) == set(ids)  # close wrote the last one
    with Store(path) as store:
        assert store.outbox_depth() == 0


def test_a_crash_before_the_write_only_publishes_the_event_again(tmp_path: Path) -> None:
    """The process dies with a confirmation and a PUBACK in memory: the next start finds both
    events in its outbox (journal order) and publishes them again; the journal lost nothing."""
    path = tmp_path / "agent.sqlite"
    crashed = Store(path)  # never closed: its memory is what a SIGKILL loses
    first = crashed.record_pass(entry("AB123CD"), presence="enter")
    second = crashed.record_pass(entry("XY999"), presence="enter")
    crashed.mark_confirmed([first])
    crashed.mark_sent([second])
    assert crashed.unsent_events() == []
    with Store(path) as restarted:
        assert [e.event_id for e in restarted.unsent_events()] == [first, second]
        assert restarted.outbox_depth() == 2
        assert {p.plate for p in restarted.inside()} == {"AB123CD", "XY999"}
    crashed._db.close()  # the test's own cleanup, without the flush a clean close would do


def test_the_outbox_skips_what_is_in_flight_across_pages(tmp_path: Path) -> None:
    with Store(tmp_path / "agent.sqlite") as store:
        ids = [store.journal(entry(f"CAR{i}")) for i in range(12)]
        store.mark_sent(ids[:5])
        store.mark_confirmed(ids[6:9])
        assert [e.event_id for e in store.unsent_events(limit=3)] == [ids[5], ids[9], ids[10]]
        assert store.requeue_unconfirmed() == 5  # a reconnect: every PUBACKed one again
        assert [e.event_id for e in store.unsent_events(limit=7)] == [*ids[:6], ids[9]]
        assert store.mark_sent(["unknown", ids[7]]) == 0  # not journaled / confirmed already
