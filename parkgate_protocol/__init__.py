"""The lot ↔ cloud wire contract: MQTT topics, message models, wire enums and their versions.

Pure: depends only on pydantic; no IO, no threads, nothing at import time beyond class
definitions. The gate agent and the cloud both import this package and never each other; each
side converts its own rows to and from these models (``gate_agent.wire``, ``cloud_api.changes``).
``docs/protocol.md`` documents it for everyone else.

Topics (``{lot}`` matches :data:`LOT_ID_PATTERN`)::

    parkgate/v1/lots/{lot}/reservations   cloud → lot   QoS 1   ReservationChange
    parkgate/v1/lots/{lot}/events         lot → cloud   QoS 1   GateEvent
    parkgate/v1/lots/{lot}/status         lot → cloud   QoS 1, retained, last will   Status
    parkgate/v1/lots/{lot}/commands       cloud → lot   QoS 1   Command
    parkgate/v1/lots/{lot}/acks           cloud → lot   QoS 1   EventAck
    GET /lots/{lot}/changes?since=N[&snapshot=true]   lot → cloud (HTTP)   ChangesPage

Booking access codes (:func:`sign_access_code` at the cloud, :func:`check_access_code` at the
gate) are signed with per-lot keys (:class:`AccessKey`) that travel on the same feed as an
``access_keys`` change and in snapshot pages.

The lot's policy (:class:`LotPolicy`, with its :class:`Tariff` and :func:`price_stay`, the one
pricing function both sides run) travels on the reservation feed as a ``policy`` change.

Every payload is one UTF-8 JSON object with a version field ``v`` (:data:`PROTOCOL_VERSION`);
parsing is strict and every failure is one :class:`ProtocolError` that never echoes input values.
"""

from parkgate_protocol._access_code import (
    CODE_SLACK,
    AccessCode,
    AccessCodeError,
    SigningKey,
    check_access_code,
    parse_access_code,
    sign_access_code,
)
from parkgate_protocol._codec import (
    MAX_MESSAGE_BYTES,
    encode,
    parse_changes_page,
    parse_command,
    parse_event_ack,
    parse_gate_event,
    parse_reservation_change,
    parse_status,
)
from parkgate_protocol._enums import (
    AccessCategory,
    AntiPassbackMode,
    ChangeKind,
    CommandKind,
    Direction,
    GateEventKind,
    ListKind,
    OfflineExit,
    ReservationStatus,
)
from parkgate_protocol._errors import ProtocolError, describe_validation_error
from parkgate_protocol._messages import (
    MAX_ACCESS_KEYS,
    MAX_ACK_IDS,
    PROTOCOL_VERSION,
    AccessKey,
    ChangesPage,
    Command,
    EventAck,
    GateEvent,
    LaneHealth,
    ListEntrySnapshot,
    Message,
    ReservationChange,
    ReservationSnapshot,
    Status,
    StayPayment,
)
from parkgate_protocol._policy import POLICY_SCHEMA, LotPolicy, default_tariff, parse_policy
from parkgate_protocol._tariff import (
    MAX_PRICED_DAYS,
    Tariff,
    TariffBand,
    VehicleTariff,
    price_stay,
)
from parkgate_protocol._topics import (
    CHANNELS,
    LOT_ID_PATTERN,
    TOPIC_ROOT,
    Channel,
    check_lot_id,
    is_lot_id,
    parse_topic,
    shared_subscription,
    topic,
)

__all__ = [
    "CHANNELS",
    "CODE_SLACK",
    "LOT_ID_PATTERN",
    "MAX_ACCESS_KEYS",
    "MAX_ACK_IDS",
    "MAX_MESSAGE_BYTES",
    "MAX_PRICED_DAYS",
    "POLICY_SCHEMA",
    "PROTOCOL_VERSION",
    "TOPIC_ROOT",
    "AccessCategory",
    "AccessCode",
    "AccessCodeError",
    "AccessKey",
    "AntiPassbackMode",
    "ChangeKind",
    "ChangesPage",
    "Channel",
    "Command",
    "CommandKind",
    "Direction",
    "EventAck",
    "GateEvent",
    "GateEventKind",
    "LaneHealth",
    "ListEntrySnapshot",
    "ListKind",
    "LotPolicy",
    "Message",
    "OfflineExit",
    "ProtocolError",
    "ReservationChange",
    "ReservationSnapshot",
    "ReservationStatus",
    "SigningKey",
    "Status",
    "StayPayment",
    "Tariff",
    "TariffBand",
    "VehicleTariff",
    "check_access_code",
    "check_lot_id",
    "default_tariff",
    "describe_validation_error",
    "encode",
    "is_lot_id",
    "parse_access_code",
    "parse_changes_page",
    "parse_command",
    "parse_event_ack",
    "parse_gate_event",
    "parse_policy",
    "parse_reservation_change",
    "parse_status",
    "parse_topic",
    "price_stay",
    "shared_subscription",
    "sign_access_code",
    "topic",
]
