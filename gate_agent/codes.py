"""Whether a booking access code opens a lane: pure, on top of :func:`gate_agent.decision.decide`.

A code (read from a QR code on the driver's phone, or typed on the lane's code page) is first
checked by the protocol (:func:`parkgate_protocol.check_access_code`: signature under one of the
lot's keys, lot, validity); a refusal keeps its own reason (``code_invalid``,
``code_other_lot``, ``code_expired``). A verified code names a booking; the lane's decision for it
is the plate rules' decision for that booking's plate holding that booking alone:
:func:`decide` on one exactly-matched candidate with the booking, the plate's presence and stay
payment, and its deny-list entries (a deny-listed car stays out whatever it shows; allow-list
entries do not count: the code, not a permit, is what is judged). The verdict is then named for
the code:

- entry opening (``reservation_valid``) → ``booking_code``;
- the booking ``expired`` → ``code_expired``; ``cancelled`` → ``code_cancelled``;
- the plate (or the booking) recorded inside → ``code_used``, whatever the lot's anti-passback
  mode: a code is a copyable picture, so one entry per code until an exit (hard passback);
- other denials (``not_paid``, ``too_early``, ``denylisted``) keep their reason;
- at an exit the plate rules' reason stands (``exit_paid``, ``paid``, ``bill_later``,
  ``payment_due``: what the cloud bills by), with the flag ``booking_code``.

A verified code for a booking the cache does not hold is ``no_reservation``. Every code decision
carries the flag ``booking_code``; the camera's plate read, if any, is kept as ``read_text``
(flag ``plate_differs`` when it is not the booking's plate); ``plate`` is the booking's plate, so
presence and the exit work as for a plate entry.
"""

from __future__ import annotations

import hmac
from dataclasses import replace
from datetime import datetime

from gate_agent.decision import decide
from gate_agent.domain import (
    CandidateFacts,
    Decision,
    Direction,
    ListKind,
    LotRules,
    LotState,
    Match,
    MatchKind,
    Reason,
    Reservation,
)
from parkgate_protocol import AccessCodeError

__all__ = ["CODE_FLAG", "SUFFIX_LENGTH", "code_decision", "suffix_matches"]

SUFFIX_LENGTH = 3  # the code page asks for the plate's last characters, this many

CODE_FLAG = "booking_code"
_ENTRY_RENAMES = {
    Reason.RESERVATION_VALID: Reason.BOOKING_CODE,
    Reason.EXPIRED: Reason.CODE_EXPIRED,
    Reason.CANCELLED: Reason.CODE_CANCELLED,
    Reason.ALREADY_INSIDE: Reason.CODE_USED,
    Reason.SOFT_PASSBACK: Reason.CODE_USED,
}


def code_decision(
    direction: Direction,
    checked: str | AccessCodeError,
    reservation: Reservation | None,
    facts: CandidateFacts | None,
    now: datetime,
    rules: LotRules,
    *,
    lane_id: str | None = None,
    lot: LotState | None = None,
    read_text: str | None = None,
) -> Decision:
    """The lane's verdict on a code (see the module docstring). ``checked`` is the booking id
    the code proved (or the code page's match proved), else the code's refusal;
    ``reservation`` is that cached booking and ``facts`` the cache's facts of its plate (None:
    not cached); ``read_text`` is the camera's best plate read of the same pass, if any."""
    flags = [CODE_FLAG]
    if isinstance(checked, AccessCodeError):
        return Decision(
            open=False,
            reason=Reason(checked.reason),
            read_text=read_text,
            confidence=0.0,
            detail=checked.detail,
            flags=tuple(flags),
        )
    if reservation is None:
        return Decision(
            open=False,
            reason=Reason.NO_RESERVATION,
            read_text=read_text,
            detail=f"code for booking {checked}, not in the lot's cache",
            flags=tuple(flags),
        )
    if read_text is not None and read_text != reservation.plate:
        flags.append("plate_differs")
    candidate = _booking_candidate(reservation, facts)
    plain = decide(direction, [candidate], now, rules, lane_id, lot or LotState())
    reason = plain.reason
    if direction is Direction.ENTRY:
        reason = _ENTRY_RENAMES.get(reason, reason)
    opened = plain.open and reason is not Reason.CODE_USED
    detail = f"code for booking {reservation.id}: {plain.reason.value}"
    if plain.detail:
        detail += f" ({plain.detail})"
    return replace(
        plain,
        open=opened,
        reason=reason,
        read_text=read_text,
        confidence=1.0,
        match_reason="booking code",
        reservation_id=reservation.id,
        detail=detail,
        flags=(*flags, *(f for f in plain.flags if f != "passback")),
    )


def _booking_candidate(reservation: Reservation, facts: CandidateFacts | None) -> CandidateFacts:
    """The booking's plate as an exact, sure read holding only this booking."""
    plate = reservation.plate
    denies = (
        () if facts is None else tuple(e for e in facts.list_entries if e.kind is ListKind.DENY)
    )
    return CandidateFacts(
        read_text=plate,
        confidence=1.0,
        match=Match(MatchKind.EXACT, plate, reason="booking code"),
        reservations=(reservation,),
        list_entries=denies,
        presence=None if facts is None else facts.presence,
        stay_payment=None if facts is None else facts.stay_payment,
    )


def suffix_matches(plate: str, typed: str) -> bool:
    """The plate's last :data:`SUFFIX_LENGTH` characters are ``typed`` (normalised: upper case,
    letters and digits), compared in constant time."""
    typed = "".join(ch for ch in typed.upper() if ch.isascii() and ch.isalnum())
    if len(typed) != SUFFIX_LENGTH or len(plate) < SUFFIX_LENGTH:
        return False
    return hmac.compare_digest(plate[-SUFFIX_LENGTH:].encode(), typed.encode())
