"""The cloud's ``EventAck`` against a real Mosquitto: it confirms journaled events; events the
broker accepted but nobody confirmed are published again; malformed acks are dead-lettered."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import parkgate_protocol as p
from devservices import MosquittoInstance, wait_for
from gate_agent.store import Store
from tests.gate_agent.test_sync import LOT, journal, start_sync
from tests.support.sync import CloudPeer, FakeCloud

pytestmark = pytest.mark.integration


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "agent.sqlite3") as s:
        yield s


def ack(*event_ids: str, lot_id: str = LOT) -> bytes:
    return p.encode(
        p.EventAck(lot_id=lot_id, event_ids=list(event_ids), acked_at=datetime.now(UTC))
    )


def test_acks_confirm_events_and_the_heartbeat_counts_unconfirmed(
    mosquitto: MosquittoInstance, store: Store, tmp_path: Path
) -> None:
    peer = CloudPeer(mosquitto, LOT)  # acks every event it receives
    sync = start_sync(mosquitto, store, FakeCloud(LOT), tmp_path)
    try:
        ids = journal(store, 5, "confirmed")
        sync.notify()
        wait_for(lambda: store.outbox_depth() == 0, what="all confirmed")
        assert all(e.confirmed_at is not None and e.sent_at is not None for e in store.events())
        assert sync.outbox.confirmed_total == 5 and sync.outbox.requeued_total == 0
        assert peer.event_ids() == ids
        wait_for(lambda: sync.status.outbox_depth == 0, what="status page depth")
    finally:
        sync.stop()
        peer.close()


def test_unconfirmed_events_are_published_again_until_acked_duplicates_harmless(
    mosquitto: MosquittoInstance, store: Store, tmp_path: Path
) -> None:
    peer = CloudPeer(mosquitto, LOT, acks=False)  # the cloud stores nothing (yet)
    sync = start_sync(mosquitto, store, FakeCloud(LOT), tmp_path, confirm_timeout_seconds=0.5)
    try:
        ids = journal(store, 3, "silent")
        sync.notify()
        wait_for(lambda: sync.outbox.requeued_total >= 3, what="published again after 0.5 s")

        def copies() -> int:
            return sum(1 for r in list(peer.received) if r.topic.endswith("/events"))

        wait_for(lambda: copies() >= 6, what="the broker saw each event twice")
        assert store.outbox_depth() == 3  # PUBACKed again and again, never confirmed
        wait_for(lambda: any(s.outbox_depth == 3 for s in peer.statuses()), what="heartbeat")
        peer.send("acks", ack(*ids))
        peer.send("acks", ack(*ids))  # a duplicate ack (the cloud acks redeliveries too)
        wait_for(lambda: store.outbox_depth() == 0, what="confirmed by the ack")
        requeued = sync.outbox.requeued_total
        peer.send("acks", ack(ids[0]))  # a late ack for a confirmed event: nothing changes
        journal(store, 1, "after")
        sync.notify()
        wait_for(lambda: store.outbox_depth() == 1 and not store.unsent_events(), what="sent")
        assert {e.event_id for e in store.events() if e.confirmed_at is not None} == set(ids)
        assert sync.outbox.requeued_total >= requeued
    finally:
        sync.stop()
        peer.close()


def test_malformed_acks_are_dead_lettered_and_the_client_keeps_going(
    mosquitto: MosquittoInstance, store: Store, tmp_path: Path
) -> None:
    peer = CloudPeer(mosquitto, LOT, acks=False)
    sync = start_sync(mosquitto, store, FakeCloud(LOT), tmp_path)
    try:
        [event_id] = journal(store, 1, "x")
        sync.notify()
        wait_for(lambda: not store.unsent_events(), what="PUBACKed")
        now = datetime.now(UTC).isoformat()
        good = {"v": 1, "lot_id": LOT, "event_ids": [event_id], "acked_at": now}
        bad = [
            b"not json",
            b"[]",
            json.dumps({**good, "v": 2}).encode(),
            json.dumps({**good, "event_ids": []}).encode(),
            json.dumps({**good, "extra": 1}).encode(),
            json.dumps({**good, "acked_at": "2026-03-02T12:00:00"}).encode(),  # naive time
            ack(event_id, lot_id="lot-b"),  # another lot's ack on our topic
        ]
        for payload in bad:
            peer.send("acks", payload)
        wait_for(lambda: sync.status.dead_letters == len(bad), what="dead-lettered")
        assert store.outbox_depth() == 1  # none of them confirmed anything
        lines = (tmp_path / "sync-dead-letters.jsonl").read_text().splitlines()
        reasons = [json.loads(line)["reason"].split(":")[0] for line in lines]
        assert reasons == [
            "bad_json",
            "not_an_object",
            "unsupported_version",
            "invalid",
            "invalid",
            "invalid",
            "wrong_lot",
        ]
        peer.send("acks", ack(event_id))
        wait_for(lambda: store.outbox_depth() == 0, what="a good ack still works")
        assert sync.status.connected
    finally:
        sync.stop()
        peer.close()
