"""The shipped TLS listener (config/mosquitto/mosquitto.conf, certificates from ``cloud-api
broker-tls``) against clients that should not get in: no CA (the system's trust store), another
install's CA, a host name the certificate does not name, plain MQTT on the TLS port. A client
with the CA a lot is given, dialing the name the certificate was made for, gets in."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from cloud_api.lot_sync import BrokerTls, make_broker_tls
from devservices import MosquittoInstance, secured_broker, wait_for

pytestmark = pytest.mark.integration

LOT, PASSWORD = "7", "pw-7"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> BrokerTls:
    return make_broker_tls(tmp_path_factory.mktemp("tls"), ["localhost"])


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, tls: BrokerTls) -> Iterator[MosquittoInstance]:
    workdir = tmp_path_factory.mktemp("mqtt")
    with secured_broker(workdir, {LOT: PASSWORD}, tls_dir=tls.directory) as started:
        yield started


def lot_client(ca_file: Path | None) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=LOT, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.username_pw_set(LOT, PASSWORD)
    client.tls_set(ca_certs=str(ca_file) if ca_file else None)  # None: the system's CAs
    return client


def test_a_lot_with_the_ca_it_was_given_gets_in(broker: MosquittoInstance, tls: BrokerTls) -> None:
    client = lot_client(tls.ca_cert)
    answers: list[ReasonCode] = []
    client.on_connect = lambda _c, _u, _f, rc, _p: answers.append(rc)
    assert broker.tls_port is not None
    client.connect("localhost", broker.tls_port)
    client.loop_start()
    try:
        wait_for(lambda: answers, what="CONNACK over TLS")
        assert not answers[0].is_failure
        info = client.publish(f"parkgate/v1/lots/{LOT}/status", b"{}", qos=1)
        info.wait_for_publish(timeout=10)
        assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.parametrize("case", ["no CA: the system's trust store", "another install's CA"])
def test_a_client_without_the_brokers_ca_is_refused(
    broker: MosquittoInstance, tmp_path: Path, case: str
) -> None:
    ca = make_broker_tls(tmp_path / "other", ["localhost"]).ca_cert if "another" in case else None
    client = lot_client(ca)
    assert broker.tls_port is not None
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        client.connect("localhost", broker.tls_port)


def test_a_name_the_certificate_does_not_name_is_refused(
    broker: MosquittoInstance, tls: BrokerTls
) -> None:
    """The right CA, but dialing 127.0.0.1 (the certificate names only localhost): a stolen
    server key elsewhere, or a DNS hijack, would look like this."""
    client = lot_client(tls.ca_cert)
    assert broker.tls_port is not None
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        client.connect("127.0.0.1", broker.tls_port)


def test_plain_mqtt_on_the_tls_port_gets_no_connack(broker: MosquittoInstance) -> None:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=LOT, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.username_pw_set(LOT, PASSWORD)
    answers: list[ReasonCode] = []
    closed: list[ReasonCode] = []
    client.on_connect = lambda _c, _u, _f, rc, _p: answers.append(rc)
    client.on_disconnect = lambda _c, _u, _f, rc, _p: closed.append(rc)
    assert broker.tls_port is not None
    client.connect("localhost", broker.tls_port)
    client.loop_start()
    try:
        wait_for(lambda: closed, what="the broker closing the plain connection")
        assert answers == []
    finally:
        client.loop_stop()
