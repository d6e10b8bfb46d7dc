"""The parking vocabulary every gate-agent module speaks.

Plain frozen dataclasses and string enums, no IO. The enums whose values cross the wire
(:class:`Direction`, :class:`ReservationStatus`, :class:`ListKind`, and :class:`EventKind`, the
protocol's ``GateEventKind``) are the protocol's own, re-exported here so agent code speaks one
vocabulary. Times are timezone-aware UTC ``datetime``s; money is integer minor units (cents) plus
an ISO currency code. The journal's records (:class:`JournalEvent`, :class:`AuditEntry`) are here
too; :mod:`gate_agent.store` keeps them.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from parkgate_protocol import (
    Direction,
    GateEventKind,
    ListKind,
    OfflineExit,
    ReservationStatus,
    Tariff,
)

__all__ = [
    "AntiPassback",
    "AuditEntry",
    "CandidateFacts",
    "CharOdds",
    "Decision",
    "Direction",
    "EventKind",
    "JournalEvent",
    "ListEntry",
    "ListKind",
    "LotRules",
    "LotState",
    "Match",
    "MatchKind",
    "OfflineExit",
    "PlateRead",
    "Presence",
    "Reason",
    "Reservation",
    "ReservationStatus",
    "StayKind",
    "StayPayment",
    "new_event_id",
]


class Reason(StrEnum):
    """Why a lane opened or stayed shut. Values are the wire/journal reason codes."""

    RESERVATION_VALID = "reservation_valid"
    ALLOWLISTED = "allowlisted"
    EXIT_PAID = "exit_paid"  # exit with nothing owed
    BILL_LATER = "bill_later"  # exit opened although money is owed (journaled, the cloud bills)
    DRIVE_UP = "drive_up"  # entry admitted as a drive-up visitor (no booking, priced at exit)
    PAID = "paid"  # exit opened because the stay is paid through now (plus paid_exit_minutes)
    MANUAL_OPEN = "manual_open"
    SOFT_PASSBACK = "soft_passback"  # opened although the plate is recorded inside (soft mode)
    NO_RESERVATION = "no_reservation"
    NOT_PAID = "not_paid"  # reservation exists but is still pending payment
    TOO_EARLY = "too_early"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    ALREADY_INSIDE = "already_inside"
    PAYMENT_DUE = "payment_due"
    LOW_CONFIDENCE = "low_confidence"
    AMBIGUOUS_MATCH = "ambiguous_match"
    DENYLISTED = "denylisted"
    LOT_FULL = "lot_full"  # drive-up refused: no free drive-up space
    NO_PLATE = "no_plate"  # time budget ran out without any usable read
    BOOKING_CODE = "booking_code"  # entry opened for a booking's access code (QR or code page)
    CODE_INVALID = "code_invalid"  # a garbled or forged code, or one under a key not held
    CODE_OTHER_LOT = "code_other_lot"  # a code for another lot
    CODE_EXPIRED = "code_expired"  # past the code's validity, or its booking ended
    CODE_CANCELLED = "code_cancelled"  # the code's booking was cancelled
    CODE_USED = "code_used"  # the code's car is recorded inside: one entry until an exit


class AntiPassback(StrEnum):
    HARD = "hard"  # a plate recorded inside cannot enter again
    SOFT = "soft"  # it can, but the event is flagged
    OFF = "off"


class StayKind(StrEnum):
    """What kind of stay a car inside is on: it decides how the exit prices it."""

    BOOKING = "booking"  # entered on a reservation: owes its pushed amount plus any overstay
    DRIVE_UP = "drive_up"  # entered without one: owes the tariff's price of the whole stay
    PERMIT = "permit"  # allow-listed (staff, resident, permit) or let in by hand: owes nothing


class MatchKind(StrEnum):
    EXACT = "exact"
    FUZZY = "fuzzy"  # one edit the read's own evidence explains, and the only such cached plate
    AMBIGUOUS = "ambiguous"  # several cached plates are explained by the read
    NONE = "none"


CharOdds = tuple[tuple[str, float], ...]
"""What the OCR gave one position: (character, probability) pairs, likeliest first, those below
0.001 left out. The first is the character read; the others say what else it might be."""


@dataclass(frozen=True, slots=True)
class PlateRead:
    """One plate found in one frame by the recognizer (text already normalised)."""

    text: str
    confidence: float  # 0..1, the recognizer's overall confidence for this read
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in frame pixels
    char_confidences: tuple[float, ...] = ()
    detection_confidence: float = 1.0
    char_odds: tuple[CharOdds, ...] = ()  # one per character when the OCR gave them


@dataclass(frozen=True, slots=True)
class Reservation:
    id: str
    plate: str  # normalised
    starts_at: datetime
    ends_at: datetime
    status: ReservationStatus
    amount_owed_cents: int = 0  # overstay or other money the exit must see paid
    currency: str = "EUR"
    space_label: str | None = None


@dataclass(frozen=True, slots=True)
class ListEntry:
    """An allow- or deny-list entry. ``entry_id`` is the cloud's id (None: the entry is keyed by
    plate and kind); ``lanes`` limits it to those lane ids (None: every lane of the lot)."""

    plate: str
    kind: ListKind
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    note: str = ""
    entry_id: str | None = None
    category: str | None = None  # staff, resident, permit, blocked (the protocol's AccessCategory)
    lanes: tuple[str, ...] | None = None

    def valid_at(self, now: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= now) and (
            self.valid_until is None or now < self.valid_until
        )

    def counts_at(self, now: datetime, lane_id: str | None) -> bool:
        """Valid now and meant for this lane (``lane_id`` None: a lane-less check, any lane)."""
        if not self.valid_at(now):
            return False
        return self.lanes is None or lane_id is None or lane_id in self.lanes


@dataclass(frozen=True, slots=True)
class Presence:
    """A vehicle the lot believes is inside."""

    plate: str
    visit_id: str
    entered_at: datetime
    reservation_id: str | None = None
    kind: StayKind = StayKind.BOOKING  # of the stay (its id is ``visit_id``, the entry pass's)


@dataclass(frozen=True, slots=True)
class StayPayment:
    """What the cloud says a stay (``stay_id``: the entry pass's visit id) has paid: the total
    captured so far, and the time it is paid through."""

    stay_id: str
    paid_cents: int
    paid_through: datetime
    currency: str = "EUR"
    payment_id: str | None = None


@dataclass(frozen=True, slots=True)
class LotRules:
    """The rules a lane decides by: the lot's cloud policy in force, else the local fall-backs
    (:mod:`gate_agent.rules`). ``tariff`` None: the gate prices no overstay itself."""

    early_grace: timedelta = timedelta(minutes=15)
    late_grace: timedelta = timedelta(minutes=15)
    anti_passback: AntiPassback = AntiPassback.HARD
    min_confidence: float = 0.80  # below this a read never opens
    fuzzy_min_confidence: float = 0.90  # a fuzzy match: the positions it agrees on, this sure
    anti_passback_reset: timedelta | None = None  # a presence older than this no longer blocks
    pay_before_exit: bool = False  # hold a car that owes money (off: open, the cloud bills)
    overstay_grace: timedelta = timedelta(minutes=10)  # free time after a booking ends
    tariff: Tariff | None = None  # prices an overstay at the exit (the cloud policy's tariff)
    drive_up: bool = False  # admit confident reads of unknown plates while spaces are free
    drive_up_spaces: int = 0  # spaces kept for drive-up visitors
    paid_exit: timedelta = timedelta(minutes=15)  # time to leave after a stay's paid_through
    offline_exit: OfflineExit = OfflineExit.HOLD  # a car that owes while the cloud is away


@dataclass(frozen=True, slots=True)
class LotState:
    """What the lot knows besides the cached facts when a lane decides: the drive-up cars
    inside (from presence) and whether its sync can reach the cloud right now."""

    drive_up_inside: int = 0
    cloud_reachable: bool = True


@dataclass(frozen=True, slots=True)
class Match:
    kind: MatchKind
    plate: str | None = None  # the cached plate matched (None for NONE/AMBIGUOUS)
    alternatives: tuple[str, ...] = ()  # the near plates when AMBIGUOUS
    reason: str = ""  # why: "exact", "unsure 3:W>V", "dropped first F", "transposed 2-3", ...
    support: float = 1.0  # mean confidence of the read's positions that agree with the plate


@dataclass(frozen=True, slots=True)
class CandidateFacts:
    """Everything the cache knows that bears on one voted plate read."""

    read_text: str
    confidence: float
    match: Match
    reservations: tuple[Reservation, ...] = ()  # of the matched plate
    list_entries: tuple[ListEntry, ...] = ()  # of the matched plate
    presence: Presence | None = None  # of the matched plate
    stay_payment: StayPayment | None = None  # of the presence's stay, when the cloud sent one


@dataclass(frozen=True, slots=True)
class Decision:
    open: bool
    reason: Reason
    plate: str | None = None  # the cached plate matched, else the read text
    read_text: str | None = None
    confidence: float = 0.0
    reservation_id: str | None = None
    fuzzy: bool = False
    amount_owed_cents: int = 0
    currency: str = "EUR"
    detail: str = ""
    flags: tuple[str, ...] = field(default=())
    match_reason: str = ""  # how the read matched the cached plate (Match.reason), "" if not
    stay_id: str | None = None  # exit: the stay the car is on (its entry pass's visit id)
    stay_kind: StayKind | None = None  # entry that opens: the stay it begins; exit: the stay's


EventKind = GateEventKind  # what the journal records is what crosses the wire


def new_event_id() -> str:
    """A UUIDv7 (RFC 9562) in hex: the Unix time in milliseconds, then 74 random bits.

    Time-ordered, so the journal's ``event_id`` index grows at its right edge: a journal
    commit rewrites the index's last page, not a random one, and a checkpoint copies a few
    pages back, not one per event (``python -m bench disk_writes``)."""
    millis = time.time_ns() // 1_000_000
    rand_a, rand_b = secrets.randbits(12), secrets.randbits(62)
    value = (millis & (1 << 48) - 1) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return uuid.UUID(int=value).hex


@dataclass(frozen=True, slots=True)
class JournalEvent:
    """One journaled lane event; the journal doubles as the outbox to the cloud.

    ``event_id`` is generated when absent and is the cloud's deduplication key. ``occurred_at``
    defaults to the store's clock when journaled. ``plate`` is the matched plate (else the read),
    ``sent_at`` is set by ``Store.mark_sent`` (the broker accepted it: PUBACK) and
    ``confirmed_at`` by ``Store.mark_confirmed`` (the cloud stored it: an ``EventAck``); the
    store is :mod:`gate_agent.store`.
    """

    lot_id: str
    kind: EventKind
    lane_id: str | None = None
    direction: Direction | None = None
    visit_id: str | None = None
    plate: str | None = None
    read_text: str | None = None
    confidence: float | None = None
    reason: str | None = None
    reservation_id: str | None = None
    fuzzy: bool = False
    amount_owed_cents: int = 0
    currency: str = "EUR"
    occurred_at: datetime | None = None
    image_path: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    event_id: str = field(default_factory=new_event_id)
    sent_at: datetime | None = None
    confirmed_at: datetime | None = None
    stay_id: str | None = None  # the entry pass's visit id, on the entry and on its exit

    @classmethod
    def for_decision(
        cls,
        decision: Decision,
        *,
        lot_id: str,
        lane_id: str,
        direction: Direction,
        visit_id: str | None,
        occurred_at: datetime | None = None,
        image_path: str | None = None,
    ) -> JournalEvent:
        """The event a lane journals for a decision: entry/exit when it opened, else denied."""
        if decision.open:
            kind = EventKind.ENTRY if direction is Direction.ENTRY else EventKind.EXIT
        else:
            kind = EventKind.DENIED
        stay_id = decision.stay_id
        if kind is EventKind.ENTRY:
            stay_id = visit_id  # an entry begins the stay: its own visit id names it
        return cls(
            lot_id=lot_id,
            kind=kind,
            lane_id=lane_id,
            direction=direction,
            visit_id=visit_id,
            plate=decision.plate,
            read_text=decision.read_text,
            confidence=decision.confidence,
            reason=str(decision.reason),
            reservation_id=decision.reservation_id,
            fuzzy=decision.fuzzy,
            amount_owed_cents=decision.amount_owed_cents,
            currency=decision.currency,
            occurred_at=occurred_at,
            image_path=image_path,
            detail={
                "detail": decision.detail,
                "flags": list(decision.flags),
                "match_reason": decision.match_reason,
            },
            stay_id=stay_id,
        )


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A manual open, presence reset or other operator action."""

    id: int
    at: datetime
    actor: str
    action: str
    reason: str
    lane_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
