"""The shipped Mosquitto ACL (config/mosquitto/acl) against a real broker.

Lot A's credentials may publish its own events/status and read its own
reservations/commands/acks; lot B's topics are refused by the broker (MQTT 5 reason code 0x87
"not authorized").
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_api.lot_sync import make_broker_tls
from devservices import (
    MosquittoInstance,
    free_port,
    secured_broker,
    shipped_config,
    wait_for,
    wait_for_port,
    write_password_file,
)
from parkgate_protocol import shared_subscription, topic
from tests.support.mqtt import NOT_AUTHORIZED, Peer

pytestmark = pytest.mark.integration

PASSWORDS = {"lot-a": "pw-a", "lot-b": "pw-b", "cloud": "pw-cloud"}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoInstance]:
    with secured_broker(tmp_path / "mqtt", PASSWORDS) as started:
        yield started


@pytest.fixture
def peers(broker: MosquittoInstance) -> Iterator[dict[str, Peer]]:
    made = {user: Peer(broker, user, pw) for user, pw in PASSWORDS.items()}
    yield made
    for peer in made.values():
        peer.close()


def test_lot_is_confined_to_its_own_topics(peers: dict[str, Peer]) -> None:
    lot_a, cloud = peers["lot-a"], peers["cloud"]
    assert cloud.subscribe(shared_subscription("events")).value == 1  # granted QoS 1

    # lot A publishing to lot B's events: the broker says "not authorized" and drops it
    refused = lot_a.publish(topic("lot-b", "events"), b'{"forged": true}')
    assert refused.value == NOT_AUTHORIZED
    assert lot_a.publish(topic("lot-b", "status"), b"{}").value == NOT_AUTHORIZED
    # ... nor may it publish to its own reservations (only the cloud does)
    assert lot_a.publish(topic("lot-a", "reservations"), b"{}").value == NOT_AUTHORIZED

    # lot A's own topics work
    assert lot_a.subscribe(topic("lot-a", "reservations")).value == 1
    assert lot_a.subscribe(topic("lot-a", "commands")).value == 1
    own = lot_a.publish(topic("lot-a", "events"), b'{"own": true}')
    assert not own.is_failure
    assert not lot_a.publish(topic("lot-a", "status"), b"{}").is_failure
    cloud.publish(topic("lot-a", "reservations"), b'{"to": "a"}')
    wait_for(lambda: (topic("lot-a", "reservations"), b'{"to": "a"}') in lot_a.messages)

    # the cloud saw lot A's own event and never the forged one
    wait_for(lambda: (topic("lot-a", "events"), b'{"own": true}') in cloud.messages)
    assert all(t != topic("lot-b", "events") for t, _ in cloud.messages)


def test_lot_cannot_read_another_lots_reservations(peers: dict[str, Peer]) -> None:
    """Mosquitto 2.0 grants the SUBACK but checks read access on every delivery, so lot A's
    subscriptions on lot B's topics (or on every lot) never receive anything of lot B's."""
    lot_a, lot_b, cloud = peers["lot-a"], peers["lot-b"], peers["cloud"]
    for name in (topic("lot-b", "reservations"), topic("lot-b", "commands"), "parkgate/v1/#"):
        code = lot_a.subscribe(name)
        assert code.value in (1, NOT_AUTHORIZED)  # refused outright on brokers that check SUBSCRIBE
    assert lot_a.subscribe(topic("lot-a", "reservations")).value == 1
    assert lot_b.subscribe(topic("lot-b", "reservations")).value == 1
    assert lot_b.subscribe(topic("lot-b", "commands")).value == 1

    cloud.publish(topic("lot-b", "reservations"), b'{"secret": "b"}')
    cloud.publish(topic("lot-b", "commands"), b'{"open": "b"}')
    cloud.publish(topic("lot-a", "reservations"), b'{"marker": "a"}')  # after B's, same session
    wait_for(lambda: len(lot_b.messages) == 2, what="lot B's own messages")
    wait_for(lambda: (topic("lot-a", "reservations"), b'{"marker": "a"}') in lot_a.messages)
    assert {t for t, _ in lot_a.messages} == {topic("lot-a", "reservations")}
    assert all(b"marker" in payload for _, payload in lot_a.messages)


def test_anonymous_and_wrong_password_are_refused(broker: MosquittoInstance) -> None:
    for user, password in (("lot-a", "wrong"), ("nobody", "x")):
        peer = Peer(broker, user, password)
        assert peer.connect_rc is not None and peer.connect_rc.is_failure
        peer.client.loop_stop()


def test_shipped_mosquitto_conf_starts_with_exactly_its_two_listeners(tmp_path: Path) -> None:
    """config/mosquitto/mosquitto.conf parses with Mosquitto (paths and ports made local, TLS
    files from ``cloud-api broker-tls``) and opens the plain and the TLS listener, nothing else:
    no default listener on 0.0.0.0:1883, which an option written before the first ``listener``
    line makes Mosquitto 2.0 open."""
    tls = make_broker_tls(tmp_path / "tls", ["localhost"])
    passwd = write_password_file(tmp_path / "passwd", {"cloud": "pw"})
    port, tls_port = free_port(), free_port()
    lines = shipped_config(tmp_path, port, passwd, tls_dir=tls.directory, tls_port=tls_port)
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("\n".join(line for line in lines if not line.startswith("log_dest")) + "\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf), "-v"], stderr=subprocess.PIPE)
    try:
        wait_for_port(port)
        wait_for_port(tls_port)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert b"Error" not in err
    opened = re.findall(rb"Opening ipv[46] listen socket on port (\d+)", err)
    assert sorted(set(opened)) == sorted({str(port).encode(), str(tls_port).encode()})


def test_lot_reads_only_its_own_acks_and_cannot_forge_them(peers: dict[str, Peer]) -> None:
    """``acks`` (the cloud's confirmation of stored events): lot A never sees lot B's, and no lot
    may publish an ack (a forged one would make an agent stop re-sending a lost event)."""
    lot_a, lot_b, cloud = peers["lot-a"], peers["lot-b"], peers["cloud"]
    assert lot_a.subscribe(topic("lot-b", "acks")).value in (1, NOT_AUTHORIZED)
    assert lot_a.subscribe(topic("lot-a", "acks")).value == 1
    assert lot_b.subscribe(topic("lot-b", "acks")).value == 1
    assert lot_a.publish(topic("lot-a", "acks"), b'{"forged": "a"}').value == NOT_AUTHORIZED
    assert lot_b.publish(topic("lot-a", "acks"), b'{"forged": "b"}').value == NOT_AUTHORIZED
    assert not cloud.publish(topic("lot-b", "acks"), b'{"ids": "b"}').is_failure
    assert not cloud.publish(topic("lot-a", "acks"), b'{"marker": "a"}').is_failure
    wait_for(lambda: (topic("lot-b", "acks"), b'{"ids": "b"}') in lot_b.messages)
    wait_for(lambda: (topic("lot-a", "acks"), b'{"marker": "a"}') in lot_a.messages)
    assert lot_a.messages == [(topic("lot-a", "acks"), b'{"marker": "a"}')]
    assert lot_b.messages == [(topic("lot-b", "acks"), b'{"ids": "b"}')]
