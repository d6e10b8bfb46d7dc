"""A lot with valid credentials publishes garbage at the cloud's ingest: random bytes, truncated
JSON, JSON events with wrong fields, events the protocol accepts but PostgreSQL cannot store (a
NUL or a lone surrogate in a string), huge payloads. The real ``cloud-api sync`` process, on
PostgreSQL and the shipped broker config, must stay up, dead-letter every one of them, and still
store the next valid event exactly once (it is published twice).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

import parkgate_protocol as p
from cloud_api.db import make_engine
from cloud_api.lot_sync import GateEventRecord, IngestDeadLetter
from cloud_api.migrate import upgrade
from devservices import (
    CLOUD_PASSWORD,
    CLOUD_USERS,
    REPO_ROOT,
    MosquittoInstance,
    PostgresInstance,
    secured_broker,
    seed_world,
    wait_for,
)
from tests.support.mqtt import Peer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LOT_PASSWORD = "pw-lot"


@dataclass
class Rig:
    lot: str
    broker: MosquittoInstance
    sync: subprocess.Popen[bytes]
    db: Engine
    publisher: Peer

    def count(self, model: Any, *where: Any) -> int:
        with self.db.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    def stored(self, event_id: str) -> int:
        return self.count(GateEventRecord, GateEventRecord.event_id == event_id)

    def publish(self, payload: bytes) -> None:
        assert not self.publisher.publish(p.topic(self.lot, "events"), payload).is_failure


@pytest.fixture(scope="module")
def rig(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresInstance
) -> Iterator[Rig]:
    postgres_server.create_database("attacks_ingest_fuzz")
    url = postgres_server.url("attacks_ingest_fuzz")
    upgrade(url)
    lot = str(seed_world(url).lot_id)
    workdir = tmp_path_factory.mktemp("fuzz")
    broker = secured_broker(workdir / "mqtt", {**CLOUD_USERS, lot: LOT_PASSWORD}).start()
    env = {
        **os.environ,
        "PARKGATE_MQTT_HOST": broker.host,
        "PARKGATE_MQTT_PORT": str(broker.port),
        "PARKGATE_MQTT_PASSWORD": CLOUD_PASSWORD,
    }
    sync = subprocess.Popen(
        [sys.executable, "-m", "cloud_api.cli", "sync", "--database-url", url],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "sync.log").open("wb"),
    )
    rig = Rig(lot, broker, sync, make_engine(url), Peer(broker, lot, LOT_PASSWORD))
    try:
        first = valid_event(lot)
        # until the ingest has subscribed, the broker answers 0x10 "no subscribers": resend
        wait_for(lambda: rig.publish(first[1]) or rig.stored(first[0]), timeout=60)
        yield rig
    finally:
        rig.publisher.close()
        sync.terminate()
        sync.wait(timeout=20)
        rig.db.dispose()
        broker.stop()


def valid_event(lot: str, **fields: Any) -> tuple[str, bytes]:
    event = p.GateEvent(
        event_id=uuid.uuid4().hex,
        lot_id=lot,
        kind=p.GateEventKind.DENIED,
        reason="no_reservation",
        occurred_at=datetime.now(UTC),
        **fields,
    )
    return event.event_id, p.encode(event)


def event_dict(lot: str) -> dict[str, Any]:
    return dict(json.loads(valid_event(lot)[1]))


# -- what a hostile lot sends (each must be dead-lettered) -------------------------------------

random_bytes = st.binary(min_size=0, max_size=2000)
truncated = st.integers(min_value=0, max_value=10_000).map(
    lambda cut: (lambda whole: whole[: cut % len(whole)])(valid_event("1")[1])
)
WRONG_FIELDS: list[tuple[str, Any]] = [
    ("event_id", 42),
    ("event_id", ""),
    ("event_id", "x" * 65),
    ("kind", "teleport"),
    ("occurred_at", "yesterday"),
    ("lot_id", "999999"),  # another lot: wrong_lot
    ("v", 99),
    ("confidence", 7),
    ("plate", ["AB", "123"]),
]
MISSING = ["event_id", "kind", "occurred_at", "lot_id", "v"]


@st.composite
def wrong_fields(draw: st.DrawFn) -> bytes:
    body = event_dict("LOT")
    if draw(st.booleans()):
        field, value = draw(st.sampled_from(WRONG_FIELDS))
        body[field] = value
    else:
        del body[draw(st.sampled_from(MISSING))]
    return json.dumps(body).encode()


@st.composite
def unstorable_string(draw: st.DrawFn) -> bytes:
    """Valid to the protocol; PostgreSQL refuses a NUL (text and JSON columns) and a lone
    surrogate (not UTF-8)."""
    body = event_dict("LOT")
    field = draw(st.sampled_from(["event_id", "plate", "lane_id", "reason"]))
    bad = draw(st.sampled_from(["\x00", "\ud800", "\udfff"]))
    body[field] = draw(st.text(max_size=8)) + bad + draw(st.text(max_size=8))
    return json.dumps(body).encode()


huge = st.tuples(
    st.integers(min_value=64 * 1024, max_value=2 * 1024 * 1024), st.sampled_from([b"{", b"\xff"])
).map(lambda size_and_byte: b'{"v": 1, "event_id": "' + size_and_byte[1] * size_and_byte[0])


def with_string(field: str, value: str) -> bytes:
    return json.dumps({**event_dict("LOT"), field: value}).encode()


hostile = st.one_of(random_bytes, truncated, wrong_fields(), unstorable_string(), huge)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(payloads=st.lists(hostile, min_size=1, max_size=4))
@example(payloads=[with_string("plate", "AB\x00123")])  # once stopped the ingest for good
@example(payloads=[with_string("plate", "AB\ud800"), with_string("event_id", "e\udfff")])
def test_hostile_payloads_are_dead_lettered_and_the_next_event_is_stored_once(
    rig: Rig, payloads: list[bytes]
) -> None:
    dead_before = rig.count(IngestDeadLetter)
    for payload in payloads:
        rig.publish(payload.replace(b'"LOT"', f'"{rig.lot}"'.encode()))
    event_id, event = valid_event(rig.lot)
    rig.publish(event)
    rig.publish(event)  # a redelivery: stored once
    closer_id, closer = valid_event(rig.lot)
    rig.publish(closer)
    wait_for(lambda: rig.stored(closer_id) == 1, timeout=30, what="the event after the garbage")
    assert rig.sync.poll() is None, "cloud-api sync exited"
    assert rig.stored(event_id) == 1
    assert rig.count(IngestDeadLetter) - dead_before == len(payloads)
