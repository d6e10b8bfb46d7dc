"""Message models of the lot ↔ cloud wire contract.

Part of the protocol (pure pydantic, no IO). Every model forbids unknown fields; every time must
carry a UTC offset; ``v`` is the protocol version and only :data:`PROTOCOL_VERSION` is accepted.
"""

from __future__ import annotations

import base64
import re
from itertools import pairwise
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_serializer,
    field_validator,
    model_validator,
)

from parkgate_protocol._enums import (
    AccessCategory,
    ChangeKind,
    CommandKind,
    Direction,
    GateEventKind,
    ListKind,
    ReservationStatus,
)
from parkgate_protocol._topics import LOT_ID_PATTERN

__all__ = [
    "MAX_ACCESS_KEYS",
    "MAX_ACK_IDS",
    "PROTOCOL_VERSION",
    "AccessKey",
    "ChangesPage",
    "Command",
    "EventAck",
    "GateEvent",
    "LaneHealth",
    "ListEntrySnapshot",
    "Message",
    "ReservationChange",
    "ReservationSnapshot",
    "Status",
    "StayPayment",
]

PROTOCOL_VERSION: Final = 1


# -- building blocks ----------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class Message(_Model):
    v: Literal[1] = Field(PROTOCOL_VERSION, description="Protocol version of this payload.")


LotId = Annotated[str, Field(pattern=LOT_ID_PATTERN, description="The lot this is about.")]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code.")]


class ReservationSnapshot(_Model):
    """A reservation as the gate caches it (the cloud's ``lot_changes.payload``)."""

    id: str = Field(..., min_length=1, max_length=64)
    plate: str = Field(..., min_length=1, max_length=32)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    status: ReservationStatus
    amount_owed_cents: int = Field(0, ge=0)
    currency: Currency = "EUR"
    space_label: str | None = Field(None, max_length=64)


class ListEntrySnapshot(_Model):
    """An allow- or deny-list entry; validity bounds are optional (open-ended).

    ``entry_id`` is the cloud's id of the entry (a plate may have several entries with other
    windows or lanes); entries without one are keyed by plate and kind. ``lanes`` limits the entry
    to those lane ids (None: every lane of the lot)."""

    entry_id: str | None = Field(None, min_length=1, max_length=64)
    plate: str = Field(..., min_length=1, max_length=32)
    kind: ListKind
    category: AccessCategory | None = None
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    note: str = Field("", max_length=500)
    lanes: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        None, max_length=64
    )


class StayPayment(_Model):
    """A stay paid through ``paid_through``: the car that entered on ``stay_id`` owes nothing for
    its time up to then, and may leave within the policy's ``paid_exit_minutes`` after it.

    ``stay_id`` is the entry's ``GateEvent.stay_id`` (the visit id of the entry pass). The gate
    prices an exit later than ``paid_through`` plus ``paid_exit_minutes`` as the whole stay less
    ``paid_cents`` (what all payments for the stay captured so far, not just this one)."""

    stay_id: str = Field(..., min_length=1, max_length=64)
    plate: str = Field(..., min_length=1, max_length=32)
    paid_cents: int = Field(..., ge=0, description="Total captured for the stay so far.")
    currency: Currency = "EUR"
    paid_through: AwareDatetime
    payment_id: str | None = Field(None, min_length=1, max_length=64)


MAX_ACCESS_KEYS: Final = 8
_SECRET = re.compile(r"^[A-Za-z0-9_-]{22,88}$")  # base64url, no padding: 16 to 66 bytes


class AccessKey(_Model):
    """One of the lot's booking-code keys (:mod:`parkgate_protocol._access_code`): its id, the
    secret (base64url, no padding; hidden in ``repr``, revealed only when encoded for the wire)
    and, for a key being rotated out, when the gate stops accepting it (None: the current key)."""

    kid: str = Field(..., pattern=r"^[A-Za-z0-9_-]{1,16}$")
    secret: SecretStr
    retires_at: AwareDatetime | None = None

    @field_validator("secret")
    @classmethod
    def _base64url(cls, value: SecretStr) -> SecretStr:
        if not _SECRET.match(value.get_secret_value()):
            raise ValueError("secret must be 16 to 66 bytes in base64url without padding")
        return value

    @field_serializer("secret", when_used="always")
    def _reveal(self, value: SecretStr) -> str:
        return value.get_secret_value()

    def secret_bytes(self) -> bytes:
        raw = self.secret.get_secret_value()
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))


# -- cloud → lot: reservations ------------------------------------------------------------------


_REQUIRED: dict[ChangeKind, tuple[str, ...]] = {
    ChangeKind.UPSERT: ("reservation",),
    ChangeKind.REMOVE: ("reservation_id",),
    ChangeKind.LIST_PUT: ("list_entry",),
    ChangeKind.LIST_REMOVE: ("list_entry",),
    ChangeKind.SNAPSHOT: ("reservations",),
    ChangeKind.POLICY: ("policy",),
    ChangeKind.LISTS_REPLACED: (),
    ChangeKind.STAY_PAID: ("stay_payment",),
    ChangeKind.ACCESS_KEYS: ("access_keys",),
}
_PAYLOAD_FIELDS = (
    "reservation",
    "reservation_id",
    "list_entry",
    "reservations",
    "list_entries",
    "policy",
    "stay_payment",
    "access_keys",
)


class ReservationChange(Message):
    """One numbered change to a lot's cache; ``seq`` is gap-free and monotonic per lot."""

    lot_id: LotId
    seq: int = Field(..., ge=1, description="Per-lot sequence number, 1, 2, 3, ...")
    kind: ChangeKind
    cause: str | None = Field(
        None, max_length=32, description="Why (created, paid, extended, cancelled, ...); info only."
    )
    changed_at: AwareDatetime | None = None
    reservation: ReservationSnapshot | None = None
    reservation_id: str | None = Field(None, min_length=1, max_length=64)
    list_entry: ListEntrySnapshot | None = None
    reservations: list[ReservationSnapshot] | None = None
    list_entries: list[ListEntrySnapshot] | None = None
    policy: dict[str, Any] | None = Field(
        None, description="A LotPolicy object, raw: parse it with parse_policy."
    )
    stay_payment: StayPayment | None = None
    access_keys: list[AccessKey] | None = Field(
        None, max_length=MAX_ACCESS_KEYS, description="Every key the lot accepts codes under."
    )

    @model_validator(mode="after")
    def _fields_match_kind(self) -> ReservationChange:
        allowed = set(_REQUIRED[self.kind])
        if self.kind is ChangeKind.SNAPSHOT:
            allowed.update(("list_entries", "policy", "access_keys"))
        for name in _REQUIRED[self.kind]:
            if getattr(self, name) is None:
                raise ValueError(f"kind {self.kind.value} needs {name}")
        extra = [n for n in _PAYLOAD_FIELDS if n not in allowed and getattr(self, n) is not None]
        if extra:
            raise ValueError(f"kind {self.kind.value} does not take {', '.join(extra)}")
        return self


# -- lot → cloud: events ------------------------------------------------------------------------


class GateEvent(Message):
    """One journaled lane event. ``event_id`` is the cloud's deduplication key (unique)."""

    event_id: str = Field(..., min_length=1, max_length=64)
    lot_id: LotId
    lane_id: str | None = Field(None, max_length=64)
    direction: Direction | None = None
    kind: GateEventKind
    visit_id: str | None = Field(None, max_length=64)
    stay_id: str | None = Field(
        None,
        max_length=64,
        description="The stay this pass belongs to: the visit id of the car's entry pass (on the "
        "entry itself, its own visit id; on an exit or a denied exit, the entry's).",
    )
    plate: str | None = Field(None, max_length=128, description="Matched plate (or its hash).")
    read_text: str | None = Field(None, max_length=128)
    confidence: float | None = Field(None, ge=0, le=1)
    reason: str | None = Field(None, max_length=64, description="Decision reason code.")
    reservation_id: str | None = Field(None, max_length=64)
    fuzzy: bool = False
    amount_owed_cents: int = Field(0, ge=0)
    currency: Currency = "EUR"
    occurred_at: AwareDatetime
    detail: dict[str, Any] = Field(default_factory=dict)


# -- cloud → lot: confirmation of stored events ------------------------------------------------


MAX_ACK_IDS: Final = 1000


class EventAck(Message):
    """On ``acks``: the cloud stored these events (or already had them) in a committed
    transaction. A PUBACK is only the broker's promise; this is the cloud's."""

    lot_id: LotId
    event_ids: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        ..., min_length=1, max_length=MAX_ACK_IDS, description="Stored or duplicate event ids."
    )
    acked_at: AwareDatetime


# -- lot → cloud: status and heartbeat ----------------------------------------------------------


class LaneHealth(_Model):
    lane_id: str = Field(..., max_length=64)
    direction: Direction | None = None
    frames: int = Field(0, ge=0, description="Frames processed since the agent started.")
    last_frame_age_s: float | None = Field(None, ge=0)
    last_error: str | None = Field(None, max_length=500)
    help_requested_at: AwareDatetime | None = Field(
        None, description="A driver pressed the lane's help button and no operator has answered."
    )


class Status(Message):
    """Retained on ``status``: ``online`` on connect and every heartbeat, ``offline`` as the last
    will (the broker publishes it when the agent vanishes) and on a clean stop."""

    lot_id: LotId
    state: Literal["online", "offline"]
    at: AwareDatetime | None = Field(None, description="When sent (None in the last will).")
    outbox_depth: int | None = Field(
        None, ge=0, description="Journaled events the cloud has not confirmed yet."
    )
    last_applied_seq: int | None = Field(None, ge=0)
    policy_version: int | None = Field(None, ge=0, description="The policy in force at the lot.")
    policy_problem: str | None = Field(
        None, max_length=500, description="Why the newest policy pushed could not be applied."
    )
    clock_offset_s: float | None = Field(
        None,
        description="The lot's clock minus the cloud's, as last measured by the lot (seconds); "
        "a Pi with a wrong clock shows here.",
    )
    cars_inside: int | None = Field(None, ge=0, description="Vehicles the lot counts inside.")
    drive_up_inside: int | None = Field(
        None, ge=0, description="Of those, drive-up visitors (no booking, no permit)."
    )
    lanes: list[LaneHealth] = Field(default_factory=list)


# -- cloud → lot: commands ----------------------------------------------------------------------


class Command(Message):
    """An operator command. ``command_id`` makes redelivery harmless; an ``open_lane`` past
    ``expires_at`` (queued in the broker while the lot was offline) is refused, never obeyed."""

    command_id: str = Field(..., min_length=1, max_length=64)
    lot_id: LotId
    kind: CommandKind
    issued_at: AwareDatetime
    expires_at: AwareDatetime | None = None
    lane_id: str | None = Field(None, min_length=1, max_length=64)
    actor: str | None = Field(None, min_length=1, max_length=128)
    reason: str | None = Field(None, min_length=1, max_length=500)
    full: bool = True

    @model_validator(mode="after")
    def _open_needs_who_and_why(self) -> Command:
        if self.kind is CommandKind.OPEN_LANE:
            missing = [
                n for n in ("lane_id", "actor", "reason", "expires_at") if not getattr(self, n)
            ]
            if missing:
                raise ValueError(f"open_lane needs {', '.join(missing)}")
        return self


# -- HTTP catch-up ------------------------------------------------------------------------------


class ChangesPage(Message):
    """``GET /lots/{lot_id}/changes?since=N`` (bearer device token).

    Either the changes after ``since`` in order (``snapshot`` false; at most a server-chosen
    number, ``next_since`` is the last one's seq) or, when ``since`` is too far behind, unknown,
    or ``snapshot=true`` was asked, the full cache (``snapshot`` true: ``reservations`` are every
    active reservation, ``list_entries`` every list entry if the cloud keeps lists, ``policy``
    the lot's policy if it has one, and ``next_since`` the seq the snapshot is consistent with).
    Ask again from ``next_since`` while ``next_since < latest_seq``.
    """

    lot_id: LotId
    snapshot: bool
    changes: list[ReservationChange] = Field(default_factory=list)
    reservations: list[ReservationSnapshot] = Field(default_factory=list)
    list_entries: list[ListEntrySnapshot] | None = None
    policy: dict[str, Any] | None = Field(None, description="Snapshot pages: the lot's policy.")
    stay_payments: list[StayPayment] | None = Field(
        None,
        description="Snapshot pages: the latest payment state of every paid stay still inside "
        "(what the stay_paid changes the snapshot replaces said).",
    )
    access_keys: list[AccessKey] | None = Field(
        None,
        max_length=MAX_ACCESS_KEYS,
        description="Snapshot pages: every key the lot accepts booking codes under.",
    )
    next_since: int = Field(..., ge=0)
    latest_seq: int = Field(..., ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> ChangesPage:
        if self.snapshot and self.changes:
            raise ValueError("a snapshot page has no changes")
        if not self.snapshot and (
            self.reservations
            or self.list_entries is not None
            or self.policy is not None
            or self.stay_payments is not None
            or self.access_keys is not None
        ):
            raise ValueError(
                "a changes page has no reservations, list_entries, policy, stay_payments "
                "or access_keys"
            )
        seqs = [c.seq for c in self.changes]
        if any(b != a + 1 for a, b in pairwise(seqs)):
            raise ValueError("changes must be consecutive seqs in order")
        if seqs and self.next_since != seqs[-1]:
            raise ValueError("next_since must be the last change's seq")
        if any(c.lot_id != self.lot_id for c in self.changes):
            raise ValueError("every change must be for the page's lot")
        if self.next_since > self.latest_seq:
            raise ValueError("next_since is past latest_seq")
        return self
