"""OutboxPublisher without a broker: the window, and "sent" only on a successful PUBACK."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gate_agent.store import EventKind, JournalEvent, Store
from gate_agent.sync_outbox import OutboxPublisher


class FakeBroker:
    def __init__(self) -> None:
        self.published: list[bytes] = []
        self.accept = True

    def publish(self, payload: bytes) -> int | None:
        if not self.accept:
            return None
        self.published.append(payload)
        return len(self.published)  # the mid


@pytest.fixture
def store() -> Iterator[Store]:
    with Store(":memory:") as s:
        yield s


def journal(store: Store, n: int) -> list[str]:
    return [store.journal(JournalEvent(lot_id="lot-a", kind=EventKind.HEALTH)) for _ in range(n)]


def test_window_bounds_what_is_in_flight_and_only_acks_mark_sent(store: Store) -> None:
    broker = FakeBroker()
    outbox = OutboxPublisher(store, broker.publish, window=3)
    ids = journal(store, 5)
    outbox.pump(connected=True)
    assert len(broker.published) == 3 and outbox.inflight == 3
    outbox.pump(connected=True)  # no acks: nothing more goes out, nothing is marked
    assert len(broker.published) == 3 and store.outbox_depth() == 5

    outbox.acknowledged(2, ok=True)
    outbox.acknowledged(1, ok=True)
    outbox.pump(connected=True)
    assert [e.event_id for e in store.unsent_events()] == ids[2:]
    assert len(broker.published) == 5  # the window refilled, in journal order


def test_refused_puback_keeps_the_event_and_pauses(store: Store) -> None:
    now = [0.0]
    broker = FakeBroker()
    outbox = OutboxPublisher(store, broker.publish, window=2, clock=lambda: now[0])
    journal(store, 1)
    outbox.pump(connected=True)
    outbox.acknowledged(1, ok=False)  # e.g. 0x87 not authorized
    assert outbox.pump(connected=True) == pytest.approx(1.0)  # paused, retry in 1 s
    assert store.outbox_depth() == 1 and len(broker.published) == 1
    now[0] = 1.5
    outbox.pump(connected=True)
    assert len(broker.published) == 2  # published again after the pause
    outbox.acknowledged(2, ok=True)
    outbox.pump(connected=True)
    assert store.outbox_depth() == 0


def test_nothing_is_published_while_disconnected(store: Store) -> None:
    broker = FakeBroker()
    outbox = OutboxPublisher(store, broker.publish, window=5)
    journal(store, 2)
    outbox.pump(connected=False)
    assert broker.published == []
    broker.accept = False
    outbox.pump(connected=True)
    assert outbox.inflight == 0 and store.outbox_depth() == 2


def test_puback_no_matching_subscribers_is_not_sent_and_published_again(store: Store) -> None:
    """0x10 is a success code, but the broker dropped the event: keep it, retry shortly."""
    now = [0.0]
    broker = FakeBroker()
    outbox = OutboxPublisher(store, broker.publish, window=2, clock=lambda: now[0])
    journal(store, 2)
    outbox.pump(connected=True)
    outbox.acknowledged(1, ok=True, delivered=False)
    outbox.acknowledged(2, ok=True, delivered=False)  # the same window: one pause
    assert outbox.pump(connected=True) == pytest.approx(0.25)
    assert store.outbox_depth() == 2 and outbox.undelivered_total == 2
    now[0] = 0.3
    outbox.pump(connected=True)
    assert len(broker.published) == 4  # both published again
    outbox.acknowledged(3, ok=True)
    outbox.acknowledged(4, ok=True)
    outbox.pump(connected=True)
    assert store.outbox_depth() == 0
