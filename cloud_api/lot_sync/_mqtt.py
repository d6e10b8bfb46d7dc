"""The cloud's MQTT connections (relay, ingest): one way to build a paho 2.x MQTT 5 client from
the broker settings (:class:`cloud_api.settings.BrokerSettings`)."""

from __future__ import annotations

import logging
from typing import Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud_api.settings import BrokerSettings

__all__ = ["connect", "make_client"]

log = logging.getLogger(__name__)

Role = Literal["relay", "ingest"]


def make_client(settings: BrokerSettings, role: Role) -> mqtt.Client:
    """An MQTT 5 client logging in as the ``role``'s own username, which is also its client id
    (the broker enforces that: ``use_username_as_clientid``); paho reconnects by itself (1 s to
    10 s backoff)."""
    username = settings.relay_username if role == "relay" else settings.ingest_username
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=username, protocol=MQTTProtocolVersion.MQTTv5
    )
    password = settings.password.get_secret_value() if settings.password else None
    client.username_pw_set(username, password)
    if settings.tls_ca_file:
        client.tls_set(ca_certs=settings.tls_ca_file)
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    return client


def connect(client: mqtt.Client, settings: BrokerSettings, *, persistent: bool) -> None:
    """``connect_async`` + ``loop_start``: returns at once, connects (and reconnects) in the
    background. ``persistent`` keeps the session (and its queued messages) across restarts."""
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = settings.session_expiry_s if persistent else 0
    client.connect_async(
        settings.host, settings.port, keepalive=30, clean_start=not persistent, properties=props
    )
    client.loop_start()
    name = client._client_id.decode()
    log.info("mqtt %s: connecting to %s:%d", name, settings.host, settings.port)
