"""Test-side "cloud" for the sync tests: an MQTT 5 peer, a changes endpoint on MockTransport, and a
lane that only records remote opens. The feed carries reservations, access-list entries and the
lot's policy, as the real cloud's does."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import parkgate_protocol as p
from devservices import MosquittoInstance, wait_for
from gate_agent.config import SyncConfig
from gate_agent.domain import Direction, EventKind, JournalEvent, ReservationStatus, StayKind
from gate_agent.store import Store
from gate_agent.sync import SyncClient
from gate_agent.sync._dead_letters import DeadLetters
from gate_agent.sync._feed import ReservationFeed

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def snapshot(
    rid: str, plate: str, status: ReservationStatus = ReservationStatus.CONFIRMED
) -> p.ReservationSnapshot:
    return p.ReservationSnapshot(
        id=rid, plate=plate, starts_at=T0, ends_at=T0 + timedelta(hours=2), status=status
    )


class FakeCloud:
    """The lot's change feed and ``GET /lots/{lot}/changes`` (pages of ``page_size``)."""

    def __init__(self, lot_id: str, *, page_size: int = 3, token: str = "device-token") -> None:
        self.lot_id = lot_id
        self.page_size = page_size
        self.token = token
        self.changes: list[p.ReservationChange] = []
        self.active: dict[str, p.ReservationSnapshot] = {}
        self.lists: dict[str, p.ListEntrySnapshot] | None = None  # None: the cloud keeps none
        self.policy: dict[str, Any] | None = None
        self.access_keys: list[p.AccessKey] | None = None  # None: the cloud sends none
        self.snapshot_below = 0  # a ``since`` below this gets a full snapshot
        self.requests: list[dict[str, str]] = []
        self.down = False
        self.transport = httpx.MockTransport(self.handle)

    def upsert(
        self, reservation: p.ReservationSnapshot, cause: str = "created"
    ) -> p.ReservationChange:
        change = p.ReservationChange(
            lot_id=self.lot_id,
            seq=len(self.changes) + 1,
            kind=p.ChangeKind.UPSERT,
            cause=cause,
            reservation=reservation,
        )
        self.changes.append(change)
        self.active[reservation.id] = reservation
        return change

    def _change(self, kind: p.ChangeKind, **payload: Any) -> p.ReservationChange:
        change = p.ReservationChange(
            lot_id=self.lot_id, seq=len(self.changes) + 1, kind=kind, **payload
        )
        self.changes.append(change)
        return change

    @staticmethod
    def _list_key(entry: p.ListEntrySnapshot) -> str:
        return entry.entry_id or f"{entry.kind}:{entry.plate}"

    def list_put(self, entry: p.ListEntrySnapshot) -> p.ReservationChange:
        self.lists = {**(self.lists or {}), self._list_key(entry): entry}
        return self._change(p.ChangeKind.LIST_PUT, list_entry=entry)

    def list_remove(self, entry: p.ListEntrySnapshot) -> p.ReservationChange:
        (self.lists or {}).pop(self._list_key(entry), None)
        return self._change(p.ChangeKind.LIST_REMOVE, list_entry=entry)

    def lists_replaced(self, entries: list[p.ListEntrySnapshot]) -> p.ReservationChange:
        """A bulk import: the lists are replaced and one ``lists_replaced`` change says so."""
        self.lists = {self._list_key(e): e for e in entries}
        return self._change(p.ChangeKind.LISTS_REPLACED)

    def set_policy(self, policy: dict[str, Any]) -> p.ReservationChange:
        """A new policy version (raw, as the cloud sends it; it may be one a gate refuses)."""
        self.policy = policy
        return self._change(p.ChangeKind.POLICY, policy=policy)

    def stay_paid(self, payment: p.StayPayment) -> p.ReservationChange:
        """A payment captured for a stay (pay by plate, an overstay): the lot is told."""
        return self._change(p.ChangeKind.STAY_PAID, cause="paid", stay_payment=payment)

    def set_access_keys(self, keys: list[p.AccessKey]) -> p.ReservationChange:
        """The lot's booking-code keys changed (a first key, a rotation): all of them sent."""
        self.access_keys = keys
        return self._change(p.ChangeKind.ACCESS_KEYS, access_keys=keys)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("cloud unreachable", request=request)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return httpx.Response(401)
        assert request.url.path == f"/api/lots/{self.lot_id}/changes"
        params = dict(request.url.params)
        self.requests.append(params)
        since = int(params["since"])
        latest = len(self.changes)
        if params.get("snapshot") == "true" or since < self.snapshot_below or since > latest:
            page = p.ChangesPage(
                lot_id=self.lot_id,
                snapshot=True,
                reservations=list(self.active.values()),
                list_entries=None if self.lists is None else list(self.lists.values()),
                policy=self.policy,
                access_keys=self.access_keys,
                next_since=latest,
                latest_seq=latest,
            )
        else:
            rows = self.changes[since : since + self.page_size]
            page = p.ChangesPage(
                lot_id=self.lot_id,
                snapshot=False,
                changes=rows,
                next_since=rows[-1].seq if rows else since,
                latest_seq=latest,
            )
        return httpx.Response(200, content=p.encode(page))


def sync_config(broker: MosquittoInstance, **overrides: object) -> SyncConfig:
    """The agent's sync settings for ``broker`` and a :class:`FakeCloud` at cloud.test."""
    values: dict[str, object] = {
        "enabled": True,
        "broker_host": broker.host,
        "broker_port": broker.port,
        "cloud_url": "http://cloud.test/api",
        "device_token": "device-token",
        "heartbeat_seconds": 0.3,
        "inflight_window": 4,
    }
    values.update(overrides)
    return SyncConfig.model_validate(values)


def feed_for(store: Store, cloud: FakeCloud, tmp_path: Path, **kw: Any) -> ReservationFeed:
    """A reservation feed for ``cloud``'s lot that catches up from it over HTTP (no MQTT);
    ``kw``: more :class:`ReservationFeed` arguments (``on_stay_paid``)."""
    return ReservationFeed(
        store,
        cloud.lot_id,
        DeadLetters(tmp_path / "dead.jsonl"),
        cloud_url="http://cloud.test/api",
        device_token=cloud.token,
        transport=cloud.transport,
        **kw,
    )


def car_inside(
    store: Store, plate: str, stay: str, *, at: datetime, kind: StayKind, lot_id: str = "lot-1"
) -> None:
    """``plate`` entered at ``at`` on stay ``stay`` of ``kind``, as an entry lane journals it."""
    event = JournalEvent(
        lot_id=lot_id,
        kind=EventKind.ENTRY,
        direction=Direction.ENTRY,
        lane_id="entry-1",
        visit_id=stay,
        stay_id=stay,
        plate=plate,
        occurred_at=at,
    )
    store.record_pass(event, presence="enter", stay_kind=kind)


def start_sync(
    broker: MosquittoInstance, store: Store, cloud: FakeCloud, tmp_path: Path, **kw: object
) -> SyncClient:
    """A started sync client for ``cloud``'s lot, connected and caught up since connecting;
    ``lane=`` gives it a lane ``entry-1`` for remote opens, the rest overrides the config."""
    lane = kw.pop("lane", None)
    client = SyncClient(
        sync_config(broker, **kw),
        lot_id=cloud.lot_id,
        store=store,
        data_dir=tmp_path,
        lanes={"entry-1": lane} if lane is not None else None,
        transport=cloud.transport,
    )
    client.start()
    wait_for(lambda: client.status.subscribed, what="sync connected")

    def caught_up_since_connect() -> bool:
        status = client.status
        return bool(
            status.last_catch_up_at
            and status.connected_at
            and status.last_catch_up_at >= status.connected_at
        )

    wait_for(caught_up_since_connect, what="the catch-up after connecting")
    return client


class FakeLane:
    """A lane for remote commands: ``manual_open`` audits and records, no camera or barrier."""

    lane_id = "entry-1"
    direction = Direction.ENTRY

    def __init__(self, store: Store) -> None:
        self.store = store
        self.opened: list[tuple[str, str]] = []

    def manual_open(self, *, actor: str, reason: str) -> None:
        self.store.audit(actor, "manual_open", reason, lane_id=self.lane_id)
        self.opened.append((actor, reason))


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


class CloudPeer:
    """The cloud's MQTT side: a persistent MQTT 5 session subscribed to events and status that
    confirms every event it receives with an ``EventAck`` (unless ``acks`` is False)."""

    def __init__(
        self,
        broker: MosquittoInstance,
        lot_id: str,
        *,
        client_id: str | None = None,
        acks: bool = True,
    ) -> None:
        self.lot_id = lot_id
        self.acks = acks
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"cloud-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.received: list[Received] = []
        self.connects = 0
        self._lock = threading.Lock()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 300
        self.client.connect(broker.host, broker.port, clean_start=False, properties=props)
        self.client.loop_start()
        wait_for(lambda: self.connects > 0, what="cloud peer connected")

    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, rc: object, _p: object
    ) -> None:
        client.subscribe([(p.topic(self.lot_id, "events"), 1), (p.topic(self.lot_id, "status"), 1)])
        self.connects += 1

    def _on_message(self, client: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain)))
        if self.acks and msg.topic.endswith("/events"):
            event_id = p.parse_gate_event(msg.payload).event_id
            ack = p.EventAck(lot_id=self.lot_id, acked_at=datetime.now(UTC), event_ids=[event_id])
            client.publish(p.topic(self.lot_id, "acks"), p.encode(ack), qos=1)

    def send(self, channel: p.Channel, payload: bytes) -> None:
        info = self.client.publish(p.topic(self.lot_id, channel), payload, qos=1)
        info.wait_for_publish(timeout=5)

    def event_ids(self) -> list[str]:
        """Event ids in arrival order, first occurrence only (the cloud dedupes by id)."""
        seen: dict[str, None] = {}
        with self._lock:
            for r in self.received:
                if r.topic.endswith("/events"):
                    seen.setdefault(p.parse_gate_event(r.payload).event_id)
        return list(seen)

    def statuses(self) -> list[p.Status]:
        with self._lock:
            return [p.parse_status(r.payload) for r in self.received if r.topic.endswith("/status")]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
