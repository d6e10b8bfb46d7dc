"""The cloud's MQTT connections (relay, ingest): broker settings from the environment and one
way to build a paho 2.x MQTT 5 client.

Environment: ``PARKGATE_MQTT_HOST`` (default 127.0.0.1), ``PARKGATE_MQTT_PORT`` (1883),
``PARKGATE_MQTT_USER`` (``cloud``), ``PARKGATE_MQTT_PASSWORD``, ``PARKGATE_MQTT_TLS_CA`` (a CA
file; enables TLS), ``PARKGATE_MQTT_CLIENT_PREFIX`` (client ids; default ``cloud-{hostname}``),
``PARKGATE_MQTT_INGEST_GROUP`` (unset: the ingest holds a plain persistent subscription; a name:
several ingest workers share ``$share/{name}/…`` — see ``docs/scaling.md`` for the trade-off).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

__all__ = ["BrokerSettings", "connect", "make_client"]

log = logging.getLogger(__name__)

CLOUD_USER = "cloud"


@dataclass(frozen=True)
class BrokerSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str = CLOUD_USER
    password: str | None = None
    tls_ca_file: str | None = None
    client_prefix: str = "cloud"
    session_expiry_s: int = 24 * 3600
    """The ingest's persistent session: events keep queueing at the broker while it restarts."""
    ingest_group: str | None = None
    """None: a plain subscription, which Mosquitto 2.0 restores after its own restart. A name:
    a shared subscription (several workers), which Mosquitto 2.0 does *not* restore: until the
    workers re-subscribe, lots get PUBACK 0x10 and publish again."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BrokerSettings:
        env = os.environ if env is None else env
        return cls(
            host=env.get("PARKGATE_MQTT_HOST", "127.0.0.1"),
            port=int(env.get("PARKGATE_MQTT_PORT", "1883")),
            username=env.get("PARKGATE_MQTT_USER", CLOUD_USER),
            password=env.get("PARKGATE_MQTT_PASSWORD") or None,
            tls_ca_file=env.get("PARKGATE_MQTT_TLS_CA") or None,
            client_prefix=env.get("PARKGATE_MQTT_CLIENT_PREFIX", f"cloud-{socket.gethostname()}"),
            ingest_group=env.get("PARKGATE_MQTT_INGEST_GROUP") or None,
        )


def make_client(settings: BrokerSettings, role: str) -> mqtt.Client:
    """An MQTT 5 client ``{prefix}-{role}``; paho reconnects by itself (1 s to 10 s backoff)."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{settings.client_prefix}-{role}"[:64],
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    client.username_pw_set(settings.username, settings.password)
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
    log.info("mqtt %s: connecting to %s:%d", client._client_id.decode(), settings.host,
             settings.port)  # fmt: skip
