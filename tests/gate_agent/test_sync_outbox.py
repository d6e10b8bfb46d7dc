"""OutboxPublisher without a broker: the window, "sent" only on a successful PUBACK, "confirmed"
only on the cloud's EventAck, and unconfirmed events published again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from gate_agent.domain import EventKind, JournalEvent
from gate_agent.store import Store
from gate_agent.sync._outbox import OutboxPublisher


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
    assert len(broker.published) == 3 and len(store.unsent_events()) == 5

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
    assert len(store.unsent_events()) == 1 and len(broker.published) == 1
    now[0] = 1.5
    outbox.pump(connected=True)
    assert len(broker.published) == 2  # published again after the pause
    outbox.acknowledged(2, ok=True)
    outbox.pump(connected=True)
    assert store.unsent_events() == []


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
    assert len(store.unsent_events()) == 2 and outbox.undelivered_total == 2
    now[0] = 0.3
    outbox.pump(connected=True)
    assert len(broker.published) == 4  # both published again
    outbox.acknowledged(3, ok=True)
    outbox.acknowledged(4, ok=True)
    outbox.pump(connected=True)
    assert store.unsent_events() == []


class Clocks:
    """The outbox's monotonic clock and the store's wall clock, moved together."""

    def __init__(self) -> None:
        self.mono = 0.0
        self.wall = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += timedelta(seconds=seconds)


def test_only_the_clouds_ack_confirms_and_overdue_events_are_published_again() -> None:
    clocks = Clocks()
    broker = FakeBroker()
    with Store(":memory:", clock=lambda: clocks.wall) as store:
        outbox = OutboxPublisher(
            store, broker.publish, window=5, clock=lambda: clocks.mono, confirm_timeout_s=30
        )
        ids = journal(store, 3)
        outbox.pump(connected=True)
        for mid in (1, 2, 3):
            outbox.acknowledged(mid, ok=True)
        outbox.pump(connected=True)
        assert store.unsent_events() == [] and store.outbox_depth() == 3  # PUBACK: sent only
        outbox.confirmed([ids[0], "someone-elses-id"])
        outbox.pump(connected=True)
        assert store.outbox_depth() == 2 and outbox.confirmed_total == 1
        clocks.advance(20)
        outbox.pump(connected=True)
        assert len(broker.published) == 3  # not overdue yet
        clocks.advance(15)
        outbox.pump(connected=True)
        assert outbox.requeued_total == 2
        assert [p for p in broker.published[3:]] == [broker.published[1], broker.published[2]]
        outbox.confirmed(ids[1:])  # the ack overtakes the PUBACKs of the second publish
        outbox.pump(connected=True)
        assert store.outbox_depth() == 0
        assert all(e.sent_at is not None and e.confirmed_at is not None for e in store.events())
        outbox.acknowledged(4, ok=True)
        outbox.acknowledged(5, ok=True)
        outbox.pump(connected=True)
        assert store.outbox_depth() == 0 and len(broker.published) == 5


def test_a_reconnect_publishes_every_unconfirmed_event_again() -> None:
    clocks = Clocks()
    broker = FakeBroker()
    with Store(":memory:", clock=lambda: clocks.wall) as store:
        outbox = OutboxPublisher(store, broker.publish, window=5, clock=lambda: clocks.mono)
        ids = journal(store, 2)
        outbox.pump(connected=True)
        outbox.acknowledged(1, ok=True)
        outbox.acknowledged(2, ok=True)
        outbox.confirmed([ids[0]])
        outbox.pump(connected=True)
        clocks.advance(1)
        outbox.reconnected()  # e.g. the broker restarted: it may have lost the second one
        outbox.pump(connected=False)
        assert len(broker.published) == 2  # not while disconnected
        outbox.pump(connected=True)
        assert len(broker.published) == 3 and broker.published[2] == broker.published[1]
        assert outbox.requeued_total == 1
