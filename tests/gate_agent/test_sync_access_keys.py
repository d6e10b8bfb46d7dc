"""The lot's booking-code keys over the sync link: a first key and a rotation pushed over a real
Mosquitto or fetched by the catch-up, kept in the store across a restart, replaced by a snapshot;
codes verify offline with them, an old key's until it retires."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import parkgate_protocol as p
from devservices import MosquittoInstance, wait_for
from gate_agent.store import Store
from gate_agent.sync._dead_letters import DeadLetters
from gate_agent.sync._feed import ReservationFeed
from tests.support.sync import CloudPeer, FakeCloud, feed_for, start_sync

LOT = "lot-k"
NOW = datetime.now(UTC)


def key(kid: str, fill: int, retires_at: datetime | None = None) -> p.AccessKey:
    secret = base64.urlsafe_b64encode(bytes([fill]) * 32).decode().rstrip("=")
    return p.AccessKey(kid=kid, secret=secret, retires_at=retires_at)  # type: ignore[arg-type]


def code(signed_with: p.AccessKey) -> str:
    signer = p.SigningKey(signed_with.kid, signed_with.secret_bytes())
    return p.sign_access_code(
        signer, lot_id=LOT, booking_id="bk_1", expires_at=NOW + timedelta(hours=2)
    )


def verifies(store: Store, text: str, at: datetime = NOW) -> str:
    try:
        p.check_access_code(text, lot_id=LOT, keys=store.access_keys, now=at)
    except p.AccessCodeError as exc:
        return exc.reason
    return "ok"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "agent.sqlite3") as s:
        yield s


def feed(store: Store, cloud: FakeCloud, tmp_path: Path) -> ReservationFeed:
    return feed_for(store, cloud, tmp_path)


def test_catch_up_brings_the_keys_and_a_rotation_keeps_the_old_one_until_it_retires(
    store: Store, tmp_path: Path
) -> None:
    cloud = FakeCloud(LOT)
    k1, k2 = key("k1", 1), key("k2", 2)
    cloud.set_access_keys([k1])
    sync = feed(store, cloud, tmp_path)
    sync.catch_up()
    assert [k.kid for k in store.access_keys] == ["k1"] and verifies(store, code(k1)) == "ok"
    retiring = key("k1", 1, retires_at=NOW + timedelta(hours=1))
    cloud.set_access_keys([k2, retiring])
    sync.catch_up()
    assert verifies(store, code(k1)) == "ok" and verifies(store, code(k2)) == "ok"
    later = NOW + timedelta(hours=1, seconds=1)
    assert verifies(store, code(k1), later) == "code_invalid"
    assert verifies(store, code(k2), later) == "ok"
    sync.close()
    # kept across a restart, and a snapshot replaces them (the old key is gone at the cloud)
    with Store(tmp_path / "agent.sqlite3") as reopened:
        assert {k.kid for k in reopened.access_keys} == {"k1", "k2"}
        cloud.access_keys = [k2]
        again = feed(reopened, cloud, tmp_path)
        again.catch_up(full=True)
        assert [k.kid for k in reopened.access_keys] == ["k2"]
        assert verifies(reopened, code(k1)) == "code_invalid"
        again.close()


@pytest.mark.integration
def test_a_pushed_key_lets_the_lot_verify_codes_offline(
    mosquitto: MosquittoInstance, store: Store, tmp_path: Path
) -> None:
    cloud = FakeCloud(LOT)
    client = start_sync(mosquitto, store, cloud, tmp_path)
    peer = CloudPeer(mosquitto, LOT)
    k1 = key("k1", 7)
    try:
        assert verifies(store, code(k1)) == "code_invalid"  # no key yet: every code refused
        peer.send("reservations", p.encode(cloud.set_access_keys([k1])))
        wait_for(lambda: verifies(store, code(k1)) == "ok", timeout=5, what="the key applied")
    finally:
        client.stop()
        peer.close()
    assert verifies(store, code(k1)) == "ok"  # sync stopped: the lot verifies on its own


def test_a_malformed_keys_change_is_dead_lettered_without_its_secret(tmp_path: Path) -> None:
    """The dead-letter file is for an operator to read: a booking-code key in it would let anyone
    with the SD card forge codes, so the value of every ``secret`` field is redacted, even from
    a payload that does not parse or is cut off."""
    secret = base64.urlsafe_b64encode(b"\x07" * 32).decode().rstrip("=")
    letters = DeadLetters(tmp_path / "dead.jsonl")
    bad_kid = f'{{"v":1,"lot_id":"{LOT}","seq":4,"kind":"access_keys","access_keys":'
    bad_kid += f'[{{"kid":"not a kid!","secret":"{secret}"}}]}}'
    letters.add("mqtt:reservations", "invalid", bad_kid.encode())
    letters.add("mqtt:reservations", "bad_json", f'{{"secret" : "{secret}'.encode())
    letters.add("mqtt:reservations", "bad_json", f'{{"kid":"k1","secret":"{secret}"}}')
    written = (tmp_path / "dead.jsonl").read_text()
    assert secret not in written and secret[:20] not in written
    assert [e["payload"].count("[redacted]") for e in letters.read()] == [1, 1, 1]
    assert "not a kid!" in letters.read()[0]["payload"]  # the rest is kept for the operator
