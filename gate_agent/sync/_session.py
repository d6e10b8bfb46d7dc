"""The lot's MQTT 5 session with the broker (in :mod:`gate_agent.sync`).

Client id = lot id, ``clean_start=False`` and a session expiry, so the broker keeps our
subscriptions and queues reservation changes and commands while the lot is offline. The retained
``status`` topic says ``offline`` as the last will and on a clean stop (:func:`say_offline`);
the client says ``online`` itself. paho's network thread (``loop_start``) reconnects by itself
with backoff (1 s doubling to 30 s). The callbacks are the client's to set: this module builds,
connects and closes the session, nothing more.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gate_agent.config import SyncConfig
from parkgate_protocol import CHANNELS, Channel, Status, encode, topic

__all__ = [
    "INBOUND",
    "NO_MATCHING_SUBSCRIBERS",
    "connect",
    "delivered",
    "lot_topics",
    "new_client",
    "say_offline",
]

INBOUND: tuple[Channel, ...] = ("reservations", "commands", "acks")  # subscribed, QoS 1
NO_MATCHING_SUBSCRIBERS = 0x10  # MQTT 5 PUBACK reason code
RECONNECT_DELAY_S = (1, 30)
EXTRA_INFLIGHT = 8  # room above the event window for status and heartbeat publishes


def lot_topics(lot_id: str) -> dict[Channel, str]:
    """The lot's topics by channel."""
    return {channel: topic(lot_id, channel) for channel in CHANNELS}


def new_client(config: SyncConfig, lot_id: str, status_topic: str) -> mqtt.Client:
    """A paho MQTT 5 client for ``lot_id``: credentials, TLS, the offline last will."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=lot_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    client.username_pw_set(config.username or lot_id, config.password)
    if config.tls_ca_file is not None:
        client.tls_set(ca_certs=str(config.tls_ca_file))
    offline = encode(Status(lot_id=lot_id, state="offline"))
    client.will_set(status_topic, offline, qos=1, retain=True)
    client.reconnect_delay_set(min_delay=RECONNECT_DELAY_S[0], max_delay=RECONNECT_DELAY_S[1])
    client.max_inflight_messages_set(config.inflight_window + EXTRA_INFLIGHT)
    return client


def connect(client: mqtt.Client, config: SyncConfig, *, keepalive_s: int) -> None:
    """Start connecting in the background as a persistent session (paho's network thread)."""
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = config.session_expiry_seconds
    client.connect_async(
        config.broker_host,
        config.broker_port,
        keepalive=keepalive_s,
        clean_start=False,
        properties=props,
    )
    client.loop_start()


def delivered(reason_code: Any) -> bool:
    """False for a PUBACK 0x10 "No matching subscribers": a success code, yet the broker
    dropped the message."""
    return getattr(reason_code, "value", 0) != NO_MATCHING_SUBSCRIBERS


def say_offline(client: mqtt.Client, status: Status, status_topic: str, timeout_s: float) -> None:
    """Publish the retained ``offline`` status and wait (at most ``timeout_s``) for its PUBACK."""
    info = client.publish(status_topic, encode(status), qos=1, retain=True)
    if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
        info.wait_for_publish(timeout=timeout_s)
