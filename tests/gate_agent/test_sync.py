"""The sync client against a real Mosquitto: cloud → lot reservations, lot → cloud events, status.

The test-side cloud is a paho MQTT 5 client plus a changes endpoint on httpx's MockTransport.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import parkgate_protocol as p
from devservices import MosquittoInstance, wait_for
from gate_agent import wire
from gate_agent.domain import EventKind, JournalEvent
from gate_agent.store import Store
from gate_agent.sync import SyncClient
from tests.support.sync import CloudPeer, FakeCloud, FakeLane, snapshot, start_sync, sync_config

pytestmark = pytest.mark.integration

LOT = "lot-a"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "agent.sqlite3") as s:
        yield s


@pytest.fixture
def cloud() -> FakeCloud:
    return FakeCloud(LOT)


@pytest.fixture
def peer(mosquitto: MosquittoInstance) -> Iterator[CloudPeer]:
    made = CloudPeer(mosquitto, LOT)
    yield made
    made.close()


def journal(store: Store, n: int, tag: str) -> list[str]:
    return [
        store.journal(JournalEvent(lot_id=LOT, kind=EventKind.HEALTH, detail={tag: i}))
        for i in range(n)
    ]


# -- cloud → lot ----------------------------------------------------------------------------------


def test_pushed_changes_reach_the_store_duplicates_and_garbage_do_no_harm(
    mosquitto: MosquittoInstance, store: Store, cloud: FakeCloud, peer: CloudPeer, tmp_path: Path
) -> None:
    sync = start_sync(mosquitto, store, cloud, tmp_path)
    try:
        first = cloud.upsert(snapshot("bk_1", "AB123CD"))
        peer.send("reservations", p.encode(first))
        wait_for(lambda: store.get_reservation("bk_1"), what="bk_1 cached")
        wait_for(lambda: sync.status.last_applied_seq == 1, what="seq 1 recorded")

        changed = cloud.upsert(snapshot("bk_1", "XY999ZZ"), cause="plate_changed")
        peer.send("reservations", p.encode(changed))
        peer.send("reservations", p.encode(first))  # a redelivered old change is ignored
        peer.send("reservations", b"\x00not json")
        peer.send(
            "reservations", json.dumps({"v": 1, "lot_id": LOT, "seq": 3, "kind": "upsert"}).encode()
        )
        peer.send("reservations", json.dumps({"v": 9}).encode())
        third = cloud.upsert(snapshot("bk_2", "CD456EF"))
        peer.send("reservations", p.encode(third))
        wait_for(lambda: store.get_reservation("bk_2"), what="bk_2 cached after the garbage")
        # the seq is saved just after the change is applied (a crash in between replays it)
        wait_for(lambda: store.get_state("sync.last_applied_seq") == 3, what="seq 3 saved")

        cached = store.get_reservation("bk_1")
        assert cached is not None and cached.plate == "XY999ZZ"
        letters = sync.dead_letters.read()
        assert [d["reason"].split(":")[0] for d in letters] == [
            "bad_json",
            "invalid",
            "unsupported_version",
        ]
        assert sync.status.dead_letters == 3
        assert all(r == {"since": "0"} for r in cloud.requests)  # start/connect only: no gap
    finally:
        sync.stop()


def test_gap_triggers_http_catch_up_in_pages(
    mosquitto: MosquittoInstance, store: Store, cloud: FakeCloud, peer: CloudPeer, tmp_path: Path
) -> None:
    for i in range(1, 6):
        cloud.upsert(snapshot(f"bk_{i}", f"AA{i:03d}BB"))
    sync = start_sync(mosquitto, store, cloud, tmp_path)  # start-up catch-up: 5 changes, 2 pages
    try:
        assert sync.status.last_applied_seq == 5
        assert [r["since"] for r in cloud.requests][:2] == ["0", "3"]
        missed = [cloud.upsert(snapshot(f"bk_{i}", f"AA{i:03d}BB")) for i in range(6, 10)]
        peer.send("reservations", p.encode(missed[-1]))  # 6..8 never pushed: seq 9 is a gap
        wait_for(lambda: sync.status.last_applied_seq == 9, what="catch-up to seq 9")
        assert all(store.get_reservation(f"bk_{i}") for i in range(1, 10))
        assert [r["since"] for r in cloud.requests][-2:] == ["5", "8"]
        asked = len(cloud.requests)
        peer.send("reservations", p.encode(missed[1]))  # late duplicate after catch-up
        peer.send("reservations", p.encode(cloud.upsert(snapshot("bk_10", "AA010BB"))))
        wait_for(lambda: store.get_reservation("bk_10"), what="seq 10 pushed")
        assert len(cloud.requests) == asked  # in sequence again: no catch-up
    finally:
        sync.stop()


def test_snapshot_replaces_the_cache_and_resync_command_forces_one(
    mosquitto: MosquittoInstance, store: Store, cloud: FakeCloud, peer: CloudPeer, tmp_path: Path
) -> None:
    store.upsert_reservation(wire.reservation(snapshot("stale", "OLD1")))
    store.set_state("sync.last_applied_seq", 2)
    for i in range(1, 8):
        cloud.upsert(snapshot(f"bk_{i}", f"NEW{i}"))
    cloud.snapshot_below = 4  # the agent at 2 is too far behind
    sync = start_sync(mosquitto, store, cloud, tmp_path)
    try:
        assert cloud.requests[0] == {"since": "2"}
        assert store.get_reservation("stale") is None
        assert all(store.get_reservation(f"bk_{i}") for i in range(1, 8))
        assert sync.status.last_applied_seq == 7

        store.upsert_reservation(wire.reservation(snapshot("stray", "ZZZ1")))  # drifted cache
        resync = p.Command(
            command_id="r1", lot_id=LOT, kind=p.CommandKind.RESYNC, issued_at=datetime.now(UTC)
        )
        peer.send("commands", p.encode(resync))
        wait_for(lambda: store.get_reservation("stray") is None, what="resync snapshot")
        assert cloud.requests[-1] == {"since": "7", "snapshot": "true"}
    finally:
        sync.stop()


def test_catch_up_retries_while_the_cloud_is_down(
    mosquitto: MosquittoInstance, store: Store, cloud: FakeCloud, tmp_path: Path
) -> None:
    cloud.down = True
    cloud.upsert(snapshot("bk_1", "AB1"))
    sync = SyncClient(
        sync_config(mosquitto),
        lot_id=LOT,
        store=store,
        data_dir=tmp_path,
        transport=cloud.transport,
    )
    sync.start()
    try:
        wait_for(lambda: sync.status.last_error and "catch-up failed" in sync.status.last_error)
        cloud.down = False
        wait_for(
            lambda: store.get_reservation("bk_1"),
            timeout=10,
            what="catch-up after the cloud is back",
        )
    finally:
        sync.stop()


# -- commands -------------------------------------------------------------------------------------


def test_remote_open_is_obeyed_once_and_expired_ones_are_refused(
    mosquitto: MosquittoInstance, store: Store, cloud: FakeCloud, peer: CloudPeer, tmp_path: Path
) -> None:
    lane = FakeLane(store)
    sync = start_sync(mosquitto, store, cloud, tmp_path, lane=lane)
    try:
        now = datetime.now(UTC)
        fields = {
            "lot_id": LOT,
            "kind": p.CommandKind.OPEN_LANE,
            "lane_id": "entry-1",
            "actor": "alice",
        }
        fresh = p.Command(
            command_id="c1",
            issued_at=now,
            expires_at=now + timedelta(minutes=1),
            reason="barrier stuck",
            **fields,
        )
        stale = p.Command(
            command_id="c2",
            issued_at=now - timedelta(hours=2),
            expires_at=now - timedelta(hours=1),
            reason="old",
            **fields,
        )
        peer.send("commands", p.encode(fresh))
        peer.send("commands", p.encode(fresh))  # redelivered: must not open twice
        peer.send("commands", p.encode(stale))
        wait_for(lambda: any(a.action == "remote_open_refused" for a in store.audit_log()))
        assert lane.opened == [("remote:alice", "barrier stuck")]
        actions = sorted(a.action for a in store.audit_log())
        assert actions == ["manual_open", "remote_open_refused"]
    finally:
        sync.stop()


# -- lot → cloud ----------------------------------------------------------------------------------


def test_events_journaled_during_a_broker_outage_drain_in_order_after_it(
    mosquitto: MosquittoInstance, store: Store, cloud: FakeCloud, peer: CloudPeer, tmp_path: Path
) -> None:
    sync = start_sync(mosquitto, store, cloud, tmp_path)
    try:
        before = journal(store, 5, "before")
        sync.notify()
        wait_for(lambda: peer.event_ids() == before, what="events before the outage")
        wait_for(lambda: store.outbox_depth() == 0, what="PUBACKs marked sent")

        mosquitto.stop()
        wait_for(lambda: not sync.status.connected, what="sync sees the broker gone")
        during = journal(store, 30, "during")
        sync.notify()
        assert store.outbox_depth() == 30  # nothing is marked sent without a PUBACK
        assert sync.status.inflight <= 4

        mosquitto.start()  # same port, same persistence: both sessions resume
        wait_for(lambda: store.outbox_depth() == 0, timeout=20, what="backlog drained")
        wait_for(lambda: len(peer.event_ids()) == 35, timeout=10, what="cloud has them all")
        assert peer.event_ids() == before + during  # every id, in journal order
        assert all(e.sent_at is not None for e in store.events(limit=100))
    finally:
        sync.stop()


def test_events_journaled_while_the_sync_client_is_down_are_sent_on_reconnect(
    mosquitto: MosquittoInstance, store: Store, cloud: FakeCloud, peer: CloudPeer, tmp_path: Path
) -> None:
    first = start_sync(mosquitto, store, cloud, tmp_path)
    first.stop()
    pending = journal(store, 12, "offline")
    second = start_sync(mosquitto, store, cloud, tmp_path)
    try:
        wait_for(lambda: peer.event_ids() == pending, timeout=10, what="backlog after restart")
        wait_for(lambda: store.outbox_depth() == 0, what="marked sent")
    finally:
        second.stop()


# -- status ---------------------------------------------------------------------------------------

CHILD = """
import sys, threading
from pathlib import Path
from gate_agent import wire
from gate_agent.config import SyncConfig
from gate_agent.store import Store
from gate_agent.sync import SyncClient
config = SyncConfig(enabled=True, broker_host="127.0.0.1", broker_port=int(sys.argv[1]))
SyncClient(config, lot_id=sys.argv[2], store=Store(sys.argv[3]), data_dir=Path(sys.argv[4])).start()
threading.Event().wait()
"""


def test_status_is_retained_online_with_heartbeats_and_the_will_says_offline(
    mosquitto: MosquittoInstance, store: Store, cloud: FakeCloud, peer: CloudPeer, tmp_path: Path
) -> None:
    sync = start_sync(mosquitto, store, cloud, tmp_path)
    journal(store, 0, "x")
    wait_for(lambda: sync.status.last_heartbeat_at, what="a heartbeat")
    beat = [s for s in peer.statuses() if s.state == "online"][-1]
    assert beat.outbox_depth == 0 and beat.last_applied_seq == 0
    sync.stop()
    wait_for(lambda: peer.statuses()[-1].state == "offline", what="clean stop says offline")

    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            str(mosquitto.port),
            "lot-k",
            str(tmp_path / "k.sqlite3"),
            str(tmp_path),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    watcher = CloudPeer(mosquitto, "lot-k")
    try:
        wait_for(
            lambda: [s.state for s in watcher.statuses()][-1:] == ["online"],
            timeout=15,
            what="child online",
        )
        child.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker must publish the will
        child.wait(timeout=10)
        wait_for(lambda: watcher.statuses()[-1].state == "offline", timeout=15, what="last will")
        late = CloudPeer(mosquitto, "lot-k")  # a newcomer gets the retained "offline"
        try:
            wait_for(lambda: late.statuses(), what="retained status")
            assert late.statuses()[0].state == "offline"
        finally:
            late.close()
    finally:
        watcher.close()
        if child.poll() is None:
            child.kill()
            child.wait()
