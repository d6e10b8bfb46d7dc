"""The lot's policy and access lists over a real Mosquitto: pushed, refused, replaced in bulk,
and obeyed by the decision within a second; a lot cut off while a deny is added applies it, in
seq order, when it reconnects."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import parkgate_protocol as p
from devservices import MosquittoInstance, wait_for
from gate_agent.decision import decide
from gate_agent.domain import Direction, EventKind, LotRules, Reason, ReservationStatus
from gate_agent.rules import rules_in_force
from gate_agent.store import Store
from gate_agent.sync import LISTS_PENDING_KEY, SEQ_STATE_KEY, SyncClient
from tests.support.sync import CloudPeer, FakeCloud, start_sync, sync_config

pytestmark = pytest.mark.integration

LOT = "lot-p"
PLATE = "AB123CD"


@dataclass
class Lot:
    """The lot's store, the cloud (its feed and its MQTT side) and the broker between them."""

    store: Store
    cloud: FakeCloud
    peer: CloudPeer
    broker: MosquittoInstance
    data_dir: Path

    def push(self, change: p.ReservationChange) -> None:
        self.peer.send("reservations", p.encode(change))

    @contextmanager
    def syncing(self) -> Iterator[SyncClient]:
        sync = start_sync(self.broker, self.store, self.cloud, self.data_dir)
        try:
            yield sync
        finally:
            sync.stop()


@pytest.fixture
def lot(mosquitto: MosquittoInstance, tmp_path: Path) -> Iterator[Lot]:
    with Store(tmp_path / "agent.sqlite3") as store:
        peer = CloudPeer(mosquitto, LOT)
        try:
            yield Lot(store, FakeCloud(LOT), peer, mosquitto, tmp_path)
        finally:
            peer.close()


def paid_now(rid: str = "bk_1", plate: str = PLATE) -> p.ReservationSnapshot:
    now = datetime.now(UTC)
    return p.ReservationSnapshot(
        id=rid,
        plate=plate,
        starts_at=now - timedelta(minutes=30),
        ends_at=now + timedelta(hours=2),
        status=ReservationStatus.CONFIRMED,
    )


def entry(kind: p.ListKind, entry_id: str, plate: str = PLATE, **kw: object) -> p.ListEntrySnapshot:
    return p.ListEntrySnapshot.model_validate(
        {"entry_id": entry_id, "plate": plate, "kind": kind, **kw}
    )


def at_entry(store: Store, plate: str = PLATE) -> Reason:
    """What the entry lane decides now for a sure read of ``plate``, by the rules in force."""
    held = store.policy
    rules = rules_in_force(None if held is None else held.policy, LotRules())
    facts = store.facts_for(plate, 0.97)
    return decide(Direction.ENTRY, [facts], datetime.now(UTC), rules, "entry-1").reason


def test_a_pushed_policy_is_applied_reported_and_a_bad_one_refused(lot: Lot) -> None:
    store, cloud, peer = lot.store, lot.cloud, lot.peer
    with lot.syncing():
        lot.push(cloud.set_policy({"version": 2, "anti_passback": "off"}))
        wait_for(lambda: store.policy is not None, what="policy v2 in force")
        assert store.policy is not None and store.policy.version == 2
        wait_for(
            lambda: any(s.policy_version == 2 for s in peer.statuses()),
            what="the status says v2",
        )

        newer = {"schema": 2, "version": 3, "night_mode": True}
        lot.push(cloud.set_policy(newer))
        wait_for(lambda: store.get_state(SEQ_STATE_KEY) == 2, what="seq advanced past it")
        assert store.policy is not None and store.policy.version == 2  # the last good one
        [health] = store.events(kind=EventKind.HEALTH)
        assert health.reason == "policy_rejected"
        assert health.detail["error"] == "unsupported_policy"
        assert (health.detail["policy_version"], health.detail["version_in_force"]) == (3, 2)
        refused = store.rejected_policy()
        assert refused is not None and refused.raw == newer
        wait_for(
            lambda: any(
                s.policy_version == 2 and (s.policy_problem or "").startswith("policy v3 rejected")
                for s in peer.statuses()
            ),
            what="the status says v3 was refused",
        )

        bad = {"version": 4, "min_confidence": 0.95, "fuzzy_min_confidence": 0.9}
        lot.push(cloud.set_policy(bad))
        wait_for(lambda: len(store.events(kind=EventKind.HEALTH)) == 2, what="v4 refused")
        assert store.events(kind=EventKind.HEALTH)[0].detail["error"] == "invalid"

        lot.push(cloud.set_policy({"version": 5}))
        wait_for(lambda: store.policy is not None and store.policy.version == 5, what="v5 in force")
        assert store.policy_problem() is None
        wait_for(
            lambda: (b := peer.statuses()[-1]).policy_version == 5 and b.policy_problem is None,
            what="the status says v5 and no problem",
        )


def test_deny_beats_a_paid_booking_within_a_second_and_removing_it_restores_admission(
    lot: Lot,
) -> None:
    store, cloud = lot.store, lot.cloud
    with lot.syncing():
        lot.push(cloud.upsert(paid_now()))
        wait_for(lambda: at_entry(store) is Reason.RESERVATION_VALID, what="booking admits")

        deny = entry(p.ListKind.DENY, "e-deny", category="blocked")
        sent = time.monotonic()
        lot.push(cloud.list_put(deny))
        wait_for(lambda: at_entry(store) is Reason.DENYLISTED, timeout=1.0, what="deny in 1 s")
        assert time.monotonic() - sent <= 1.0

        lot.push(cloud.list_remove(deny))
        wait_for(lambda: at_entry(store) is Reason.RESERVATION_VALID, what="admitted again")

        permit = entry(p.ListKind.ALLOW, "e-staff", plate="STAFF01", category="staff")
        later = entry(
            p.ListKind.ALLOW,
            "e-later",
            plate="LATER01",
            valid_from=datetime.now(UTC) + timedelta(days=1),
        )
        lot.push(cloud.list_put(permit))
        lot.push(cloud.list_put(later))
        wait_for(lambda: store.list_entry_count() == 2, what="both entries cached")
        assert at_entry(store, "STAFF01") is Reason.ALLOWLISTED
        assert at_entry(store, "LATER01") is Reason.NO_RESERVATION  # outside its window


def test_lists_replaced_fetches_a_snapshot(
    lot: Lot,
) -> None:
    store, cloud = lot.store, lot.cloud
    cloud.list_put(entry(p.ListKind.ALLOW, "old", plate="OLD0001"))
    with lot.syncing() as sync:
        assert [e.entry_id for e in store.list_entries()] == ["old"]
        imported = [entry(p.ListKind.ALLOW, f"imp-{i}", plate=f"IMP{i:04d}") for i in range(500)]
        change = cloud.lists_replaced(imported)
        lot.push(change)
        wait_for(lambda: store.list_entry_count() == 500, what="the imported lists")
        assert cloud.requests[-1] == {"since": "2", "snapshot": "true"}
        assert at_entry(store, "OLD0001") is Reason.NO_RESERVATION
        assert at_entry(store, "IMP0042") is Reason.ALLOWLISTED
        assert sync.status.last_applied_seq == 2


def test_lists_replaced_met_during_a_catch_up_fetches_a_snapshot_too(
    lot: Lot,
) -> None:
    store, cloud = lot.store, lot.cloud
    cloud.set_policy({"version": 1, "early_grace_minutes": 45})
    cloud.lists_replaced([entry(p.ListKind.DENY, "d1", plate="BAD0001")])
    cloud.upsert(paid_now())
    with lot.syncing() as sync:
        assert cloud.requests[:2] == [{"since": "0"}, {"since": "3", "snapshot": "true"}]
        assert store.policy is not None and store.policy.policy.early_grace_minutes == 45
        assert at_entry(store, "BAD0001") is Reason.DENYLISTED
        assert store.get_reservation("bk_1") is not None
        assert sync.status.last_applied_seq == 3


def test_a_deny_added_while_the_lot_is_cut_off_is_applied_on_reconnect_in_seq_order(
    lot: Lot,
) -> None:
    store, cloud, peer = lot.store, lot.cloud, lot.peer
    with lot.syncing() as sync:
        lot.push(cloud.upsert(paid_now()))
        wait_for(lambda: at_entry(store) is Reason.RESERVATION_VALID, what="booking admits")
        lot.broker.stop()
        wait_for(lambda: not sync.status.connected, what="the lot is cut off")
        deny = cloud.list_put(entry(p.ListKind.DENY, "e-deny"))
        policy = cloud.set_policy({"version": 9, "anti_passback": "soft"})
        assert at_entry(store) is Reason.RESERVATION_VALID  # the lot cannot know yet
        lot.broker.start()
        wait_for(lambda: peer.connects >= 2, timeout=10, what="the cloud reconnected")
        lot.push(policy)  # only the newest pushed: a gap before it
        wait_for(lambda: sync.status.subscribed, timeout=10, what="reconnected")
        wait_for(lambda: sync.status.last_applied_seq == 3, timeout=10, what="caught up")
        assert at_entry(store) is Reason.DENYLISTED
        assert store.policy is not None and store.policy.version == 9
        assert deny.seq < policy.seq


def test_a_restart_before_the_lists_snapshot_still_fetches_it(lot: Lot) -> None:
    """The cloud is unreachable when ``lists_replaced`` arrives; the agent stops; the next start
    owes the snapshot although the seq is already past the change."""
    store, cloud = lot.store, lot.cloud
    config = sync_config(lot.broker)
    change = cloud.lists_replaced([entry(p.ListKind.DENY, "d1", plate="BAD0001")])
    cloud.down = True
    first = SyncClient(
        config, lot_id=LOT, store=store, data_dir=lot.data_dir, transport=cloud.transport
    )
    assert first.feed.offer(change) == "snapshot"
    first.feed.close()
    assert store.get_state(SEQ_STATE_KEY) == 1 and store.list_entry_count() == 0
    cloud.down = False
    with lot.syncing():
        assert cloud.requests[0] == {"since": "1", "snapshot": "true"}
        assert at_entry(store, "BAD0001") is Reason.DENYLISTED
    assert store.get_state(LISTS_PENDING_KEY) is False
