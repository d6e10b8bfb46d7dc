"""Lanes, the web server and the sync client share one Store across threads."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gate_agent.domain import (
    Direction,
    EventKind,
    JournalEvent,
    MatchKind,
    Reservation,
    ReservationStatus,
)
from gate_agent.store import Store

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
WRITERS, EVENTS_EACH = 4, 40


def test_concurrent_journaling_lookups_and_sync(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS + 2)

    def guarded(work: object) -> threading.Thread:
        def run() -> None:
            try:
                start.wait()
                work()  # type: ignore[operator]
            except BaseException as exc:
                errors.append(exc)

        return threading.Thread(target=run)

    with Store(tmp_path / "agent.sqlite") as store:
        store.upsert_reservation(
            Reservation("r0", "CAR0", NOW, NOW + timedelta(hours=1), ReservationStatus.CONFIRMED)
        )

        def lane(n: int) -> None:
            for i in range(EVENTS_EACH):
                event = JournalEvent(
                    lot_id="lot1",
                    kind=EventKind.ENTRY,
                    lane_id=f"lane{n}",
                    direction=Direction.ENTRY,
                    visit_id=f"v{n}-{i}",
                    plate=f"L{n}P{i}",
                )
                store.record_pass(event, presence="enter")
                assert store.facts_for("CAR0", 0.9).match.kind is MatchKind.EXACT

        def sync() -> None:
            for i in range(1, 200):
                store.upsert_reservation(
                    Reservation(f"r{i}", f"SYNC{i}", NOW, NOW, ReservationStatus.CONFIRMED)
                )

        def web() -> None:
            for _ in range(100):
                store.events(limit=20)
                store.inside()
                store.outbox_depth()

        threads = [guarded(lambda n=n: lane(n)) for n in range(WRITERS)]
        threads += [guarded(sync), guarded(web)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors, errors
        assert store.outbox_depth() == WRITERS * EVENTS_EACH
        ids = [e.event_id for e in store.unsent_events(limit=1000)]
        assert len(set(ids)) == WRITERS * EVENTS_EACH
        assert len(store.inside()) == WRITERS * EVENTS_EACH
        assert store.facts_for("SYNC199", 0.9).match.kind is MatchKind.EXACT
