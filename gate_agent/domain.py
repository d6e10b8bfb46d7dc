"""The parking vocabulary every gate-agent module speaks.

Plain frozen dataclasses and string enums, no IO. Times are timezone-aware UTC ``datetime``s;
money is integer minor units (cents) plus an ISO currency code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

__all__ = [
    "AntiPassback",
    "CandidateFacts",
    "CharOdds",
    "Decision",
    "Direction",
    "ListEntry",
    "ListKind",
    "LotRules",
    "Match",
    "MatchKind",
    "PlateRead",
    "Presence",
    "Reason",
    "Reservation",
    "ReservationStatus",
]


class Direction(StrEnum):
    ENTRY = "entry"
    EXIT = "exit"


class Reason(StrEnum):
    """Why a lane opened or stayed shut. Values are the wire/journal reason codes."""

    RESERVATION_VALID = "reservation_valid"
    ALLOWLISTED = "allowlisted"
    EXIT_PAID = "exit_paid"  # exit with nothing owed
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
    NO_PLATE = "no_plate"  # time budget ran out without any usable read


class AntiPassback(StrEnum):
    HARD = "hard"  # a plate recorded inside cannot enter again
    SOFT = "soft"  # it can, but the event is flagged
    OFF = "off"


class ReservationStatus(StrEnum):
    PENDING = "pending"  # booked, awaiting payment
    CONFIRMED = "confirmed"  # paid or otherwise guaranteed
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    COMPLETED = "completed"


class ListKind(StrEnum):
    ALLOW = "allow"
    DENY = "deny"


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
    plate: str
    kind: ListKind
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    note: str = ""

    def valid_at(self, now: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= now) and (
            self.valid_until is None or now < self.valid_until
        )


@dataclass(frozen=True, slots=True)
class Presence:
    """A vehicle the lot believes is inside."""

    plate: str
    visit_id: str
    entered_at: datetime
    reservation_id: str | None = None


@dataclass(frozen=True, slots=True)
class LotRules:
    early_grace: timedelta = timedelta(minutes=15)
    late_grace: timedelta = timedelta(minutes=15)
    anti_passback: AntiPassback = AntiPassback.HARD
    min_confidence: float = 0.80  # below this a read never opens
    fuzzy_min_confidence: float = 0.90  # a fuzzy match: the positions it agrees on, this sure


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
