"""Regression (chaos test's lost events): a PUBACK with reason code 0x10 "No matching
subscribers" is a success code, yet the broker dropped the event. The agent must keep such an
event unsent and publish it again until the cloud subscribes.

Mosquitto 2.0 does not restore ``$share`` subscriptions from its persistence after a restart
(the persistent session comes back, its shared subscription does not), so right after a broker
restart the lot's events meet no subscriber until the cloud's ingest re-subscribes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

import parkgate_protocol as p
from devservices import MosquittoInstance, wait_for
from gate_agent.store import Store
from gate_agent.sync import SyncClient
from tests.gate_agent.test_sync import LOT, journal, start_sync
from tests.support.sync import CloudPeer, FakeCloud

pytestmark = pytest.mark.integration


class SharedPeer(CloudPeer):
    """The cloud as a shared-subscription ingest (``$share/cloud/…``), fixed client id."""

    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, rc: object, _p: object
    ) -> None:
        client.subscribe([(p.shared_subscription("events"), 1)])
        self.connects += 1


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "agent.sqlite3") as s:
        yield s


@pytest.fixture
def sync(mosquitto: MosquittoInstance, store: Store, tmp_path: Path) -> Iterator[SyncClient]:
    client = start_sync(mosquitto, store, FakeCloud(LOT), tmp_path)
    yield client
    client.stop()


def test_events_nobody_subscribes_to_stay_unsent_until_the_cloud_subscribes(
    mosquitto: MosquittoInstance, store: Store, sync: SyncClient
) -> None:
    ids = journal(store, 3, "early")
    sync.notify()
    wait_for(lambda: sync.outbox.undelivered_total >= 3, what="PUBACKs with 0x10")
    assert store.outbox_depth() == 3  # not marked sent: the broker dropped them
    peer = CloudPeer(mosquitto, LOT)
    try:
        wait_for(lambda: peer.event_ids() == ids, timeout=15, what="published again")
        wait_for(lambda: store.outbox_depth() == 0, what="marked sent once delivered")
    finally:
        peer.close()


def test_a_broker_restart_drops_shared_subscriptions_and_nothing_is_lost(
    mosquitto: MosquittoInstance, store: Store, sync: SyncClient
) -> None:
    peer = SharedPeer(mosquitto, LOT, client_id="cloud-ingest")
    before = journal(store, 2, "before")
    sync.notify()
    wait_for(lambda: peer.event_ids() == before, what="delivered through $share")
    wait_for(lambda: store.outbox_depth() == 0, what="confirmed by the cloud")
    peer.close()  # the ingest goes away; its persistent session stays at the broker
    mosquitto.restart()  # SIGTERM: the session is saved, but Mosquitto 2.0 forgets $share subs
    wait_for(lambda: sync.status.subscribed, timeout=15, what="agent reconnected")
    after = journal(store, 3, "after")
    sync.notify()
    wait_for(lambda: sync.outbox.undelivered_total >= 3, timeout=15, what="PUBACKs with 0x10")
    assert store.outbox_depth() == 3
    back = SharedPeer(mosquitto, LOT, client_id="cloud-ingest")
    try:
        wait_for(lambda: back.event_ids() == after, timeout=15, what="published again")
        wait_for(lambda: store.outbox_depth() == 0, what="all confirmed")
    finally:
        back.close()
