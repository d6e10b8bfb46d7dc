"""A test MQTT 5 client that records what the broker answers (CONNACK, PUBACK and SUBACK reason
codes) and what it delivers."""

from __future__ import annotations

import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devservices import MosquittoInstance, wait_for

__all__ = ["NOT_AUTHORIZED", "Peer"]

NOT_AUTHORIZED = 0x87  # MQTT 5 reason code "not authorized"


class Peer:
    """A test MQTT 5 client recording acks and messages."""

    def __init__(
        self,
        broker: MosquittoInstance,
        user: str,
        password: str,
        *,
        client_id: str | None = None,
        session_expiry: int = 0,
    ) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-{user}" if client_id is None else client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.username_pw_set(user, password)
        self.connect_rc: ReasonCode | None = None
        self.session_present: bool | None = None
        self.disconnects: list[ReasonCode] = []
        self.pubacks: dict[int, ReasonCode] = {}
        self.subacks: dict[int, list[ReasonCode]] = {}
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = session_expiry
        self.client.connect(
            broker.host, broker.port, clean_start=session_expiry == 0, properties=props
        )
        self.client.loop_start()
        wait_for(lambda: self.connect_rc is not None, what=f"{user} CONNACK")

    def _on_connect(self, _c: object, _u: object, flags: Any, rc: ReasonCode, _p: object) -> None:
        self.session_present = bool(flags.session_present)
        self.connect_rc = rc

    def _on_disconnect(
        self, _c: object, _u: object, _f: object, rc: ReasonCode, _p: object
    ) -> None:
        with self._lock:
            self.disconnects.append(rc)

    def _on_publish(self, _c: object, _u: object, mid: int, rc: ReasonCode, _p: object) -> None:
        with self._lock:
            self.pubacks[mid] = rc

    def _on_subscribe(
        self, _c: object, _u: object, mid: int, rcs: list[ReasonCode], _p: object
    ) -> None:
        with self._lock:
            self.subacks[mid] = rcs

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def publish(self, name: str, payload: bytes) -> ReasonCode:
        mid = self.client.publish(name, payload, qos=1).mid
        wait_for(lambda: mid in self.pubacks, what=f"PUBACK for {name}")
        return self.pubacks[mid]

    def subscribe(self, name: str) -> ReasonCode:
        _, mid = self.client.subscribe(name, qos=1)
        wait_for(lambda: mid in self.subacks, what=f"SUBACK for {name}")
        return self.subacks[mid][0]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
