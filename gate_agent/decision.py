"""Whether a lane opens: a pure function of the cached facts, the time and the lot's rules.

``decide(direction, candidates, now, rules)`` judges every detected plate (one
:class:`~gate_agent.domain.CandidateFacts` each) on its own, then combines the verdicts:

1. A *usable* candidate (confident enough, see below) that matches a deny-list entry valid now
   denies the whole frame with ``denylisted`` — even if another plate in the frame would open.
   A deny-listed car must not get in behind a sticker or a neighbour's plate; the operator can
   still open by hand.
2. Otherwise, if any candidate opens, the best opening candidate wins: an exact match before a
   fuzzy one, a clean opening before a ``soft_passback`` one, then the higher confidence.
3. Otherwise the most informative denial wins, in :data:`DENIAL_PRIORITY` order
   (``denylisted > payment_due > already_inside > lot_full > not_paid > too_early > expired >
   cancelled > ambiguous_match > low_confidence > no_reservation > no_plate``), ties to the
   higher confidence.
   No candidates at all is ``no_plate``.

One candidate:

- ``AMBIGUOUS`` match → ``ambiguous_match``. ``NONE`` → ``low_confidence`` if the read is below
  ``rules.min_confidence`` (an unsure read proves no absence), else ``no_reservation``.
- A read below ``rules.min_confidence`` never opens: ``low_confidence``. A fuzzy match (the read's
  own evidence explains its one difference from the cached plate, see
  :func:`gate_agent.plates.match`) also needs the positions it agrees on to be read at least
  ``rules.fuzzy_min_confidence`` sure on average (``Match.support``), else ``low_confidence``.
  A fuzzy opening carries ``fuzzy=True``. Every verdict carries the match's reason
  (``match_reason``: "exact", "unsure 3:W>V at 0.41", "dropped first F (edge at 0.62)", ...).
- List entries count only while valid (see :meth:`ListEntry.valid_at`) and on the lanes they
  name (``lanes`` None: every lane); an entry that does not count is as if absent.
- Entry: a CONFIRMED reservation whose window widened by the grace contains now opens with
  ``reservation_valid``; an allow-list entry valid now opens with ``allowlisted``. Windows are
  half-open like :meth:`ListEntry.valid_at`: ``starts_at - early_grace <= now < ends_at +
  late_grace``. Anti-passback applies to both kinds when the plate is recorded inside (and, with
  ``rules.anti_passback_reset``, entered less than that long ago): ``hard`` denies
  ``already_inside``; ``soft`` opens with reason ``soft_passback`` (the reservation id kept,
  flag ``"passback"``) so the event stands out in the journal; ``off`` ignores presence.
  Without an opening, each reservation says why not — ``cancelled``; ``expired`` (status
  EXPIRED/COMPLETED or after the widened window); ``too_early``; ``not_paid`` (PENDING inside the
  window) — and the most informative of those is given; no reservation is ``no_reservation``.
- Drive-up (``rules.drive_up``): at an entry, a plate with no reservation and no list entry —
  read at least ``rules.min_confidence`` sure, matched exactly (a plate the gate knows only from
  presence) or not at all, and plausible as a plate (:func:`plausible_plate`) — opens with
  ``drive_up`` while ``rules.drive_up_spaces`` less the drive-up cars inside
  (``LotState.drive_up_inside``) is above zero, else it is refused with ``lot_full``. A fuzzy or
  ambiguous read never becomes a drive-up. Anti-passback applies as to any entry.
- Exit never traps a car for lack of presence. An allow-listed plate exits with ``allowlisted``.
  A car's stay is the one presence recorded (its id, the entry pass's visit id, is the
  decision's ``stay_id``), and its kind says what it owes before payments:

  - ``permit``: nothing;
  - ``drive_up``: ``price_stay(tariff, entered_at, now)`` (no tariff: it cannot be priced);
  - ``booking`` (or no presence): the visit's reservation — the one presence recorded, else the
    latest non-cancelled one that has begun (with the early grace), else the next one — owes its
    pushed ``amount_owed_cents`` plus, with a tariff in the rules and now past ``ends_at +
    overstay_grace``, the overstay ``price_stay(tariff, ends_at, now)``.

  A stay the cloud says is paid (``CandidateFacts.stay_payment``) through ``T`` leaves with
  ``paid`` until ``T + rules.paid_exit``; later it owes the above less the ``paid_cents``.
  If the stay owes more than nothing, ``pay_before_exit`` holds the car with ``payment_due`` and
  the amount — unless the lot cannot reach the cloud and ``rules.offline_exit`` is
  ``open_and_bill_later`` — and otherwise the exit opens with ``bill_later`` and the amount
  (journaled, the cloud bills). A stay that cannot be priced (too long for the tariff, no tariff
  for a drive-up, a payment in another currency) is held with ``payment_due`` and why, whatever
  the policy: a price that could be wrong is never guessed. Otherwise ``exit_paid``. A car with
  no stay and no usable reservation: a plate only holding cancelled reservations is
  ``cancelled``; an unknown plate is ``no_reservation`` so that an operator looks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from gate_agent.domain import (
    AntiPassback,
    CandidateFacts,
    Decision,
    Direction,
    ListKind,
    LotRules,
    LotState,
    MatchKind,
    OfflineExit,
    Reason,
    Reservation,
    ReservationStatus,
    StayKind,
)
from parkgate_protocol import price_stay

__all__ = ["DENIAL_PRIORITY", "decide", "owed_now", "plausible_plate"]

CALM_LOT = LotState()  # no drive-up inside, the cloud in reach: what a bare decide() assumes
PLATE_LENGTHS = range(4, 11)  # a drive-up read this long, with a letter and a digit, is a plate

DENIAL_PRIORITY: tuple[Reason, ...] = (
    Reason.DENYLISTED,
    Reason.PAYMENT_DUE,
    Reason.ALREADY_INSIDE,
    Reason.LOT_FULL,
    Reason.NOT_PAID,
    Reason.TOO_EARLY,
    Reason.EXPIRED,
    Reason.CANCELLED,
    Reason.AMBIGUOUS_MATCH,
    Reason.LOW_CONFIDENCE,
    Reason.NO_RESERVATION,
    Reason.NO_PLATE,
)
_RANK = {reason: rank for rank, reason in enumerate(DENIAL_PRIORITY)}
_FINISHED = (ReservationStatus.EXPIRED, ReservationStatus.COMPLETED)


def decide(
    direction: Direction,
    candidates: Sequence[CandidateFacts],
    now: datetime,
    rules: LotRules,
    lane_id: str | None = None,
    lot: LotState = CALM_LOT,
) -> Decision:
    """Judge every candidate plate and combine the verdicts (see the module docstring).

    ``lane_id`` is the deciding lane: list entries naming other lanes do not count on it.
    ``lot`` is the lot's state beside the cache (drive-up cars inside, the cloud's reach)."""
    if not candidates:
        return Decision(open=False, reason=Reason.NO_PLATE, detail="no plate read")
    at = _Moment(now, rules, lane_id, lot)
    verdicts = [_judge(direction, c, at) for c in candidates]
    denied = [v for v in verdicts if v.reason is Reason.DENYLISTED]
    if denied:
        return max(denied, key=lambda v: v.confidence)
    opened = [v for v in verdicts if v.open]
    if opened:
        return max(opened, key=_opening_rank)
    return min(verdicts, key=lambda v: (_RANK.get(v.reason, len(_RANK)), -v.confidence))


def _opening_rank(v: Decision) -> tuple[bool, bool, float]:
    return (not v.fuzzy, v.reason is not Reason.SOFT_PASSBACK, v.confidence)


@dataclass(frozen=True, slots=True)
class _Moment:
    """When and where a decision is taken, under which rules."""

    now: datetime
    rules: LotRules
    lane_id: str | None
    lot: LotState

    def listed(self, c: CandidateFacts, kind: ListKind) -> bool:
        """A list entry of this kind counts for the candidate here and now."""
        return any(e.kind is kind and e.counts_at(self.now, self.lane_id) for e in c.list_entries)

    def blocks_entry(self, c: CandidateFacts) -> bool:
        """The plate is recorded inside, recently enough for anti-passback to care."""
        if c.presence is None or self.rules.anti_passback is AntiPassback.OFF:
            return False
        reset = self.rules.anti_passback_reset
        return reset is None or self.now - c.presence.entered_at < reset


def plausible_plate(text: str) -> bool:
    """A read that looks like a plate: letters and digits only, 4 to 10 of them, at least one
    of each (a drive-up admission must never open for a sign, a sticker or a garbage read)."""
    return (
        len(text) in PLATE_LENGTHS
        and text.isalnum()
        and text.isascii()
        and any(ch.isdigit() for ch in text)
        and any(ch.isalpha() for ch in text)
    )


def _judge(direction: Direction, c: CandidateFacts, at: _Moment) -> Decision:
    stay = c.presence if direction is Direction.EXIT else None
    base = Decision(
        open=False,
        reason=Reason.NO_RESERVATION,
        plate=c.match.plate or c.read_text,
        read_text=c.read_text,
        confidence=c.confidence,
        fuzzy=c.match.kind is MatchKind.FUZZY,
        match_reason=c.match.reason,
        stay_id=None if stay is None else stay.visit_id,
        stay_kind=None if stay is None else stay.kind,
    )
    early = _unusable(c, at.rules)
    unknown_drive_up = (
        direction is Direction.ENTRY and at.rules.drive_up and c.match.kind is MatchKind.NONE
    )
    if early is not None and not (unknown_drive_up and early[0] is Reason.NO_RESERVATION):
        return _with(base, early[0], early[1])
    if at.listed(c, ListKind.DENY):
        return _with(base, Reason.DENYLISTED, "deny-list entry valid now")
    if direction is Direction.ENTRY:
        return _judge_entry(base, c, at)
    return _judge_exit(base, c, at)


def _unusable(c: CandidateFacts, rules: LotRules) -> tuple[Reason, str] | None:
    """Why this read cannot be acted on at all, or None if it can."""
    kind = c.match.kind
    if kind is MatchKind.AMBIGUOUS:
        return Reason.AMBIGUOUS_MATCH, f"{len(c.match.alternatives)} cached plates equally near"
    if c.confidence < rules.min_confidence:
        return Reason.LOW_CONFIDENCE, f"read confidence below {rules.min_confidence:.2f}"
    if kind is MatchKind.NONE:
        return Reason.NO_RESERVATION, "plate not in the cache"
    if kind is MatchKind.FUZZY and c.match.support < rules.fuzzy_min_confidence:
        return Reason.LOW_CONFIDENCE, (
            f"fuzzy match needs the rest of the read {rules.fuzzy_min_confidence:.2f} sure"
        )
    return None


def _judge_entry(base: Decision, c: CandidateFacts, at: _Moment) -> Decision:
    now, rules = at.now, at.rules
    valid = [r for r in c.reservations if _reservation_reason(r, now, rules) is None]
    if valid:
        best = min(valid, key=lambda r: (not (r.starts_at <= now < r.ends_at), r.starts_at))
        opening = _with(base, Reason.RESERVATION_VALID, "", open_=True, reservation=best)
        opening = replace(opening, stay_kind=StayKind.BOOKING)
    elif at.listed(c, ListKind.ALLOW):
        opening = _with(base, Reason.ALLOWLISTED, "allow-list entry valid now", open_=True)
        opening = replace(opening, stay_kind=StayKind.PERMIT)
    elif _drive_up_candidate(c, at):
        opening = _drive_up(base, c, at)
        if not opening.open:
            return opening
    else:
        return _entry_denial(base, c, now, rules)
    if not at.blocks_entry(c):
        return opening
    if rules.anti_passback is AntiPassback.HARD:
        return _with(opening, Reason.ALREADY_INSIDE, "plate recorded inside", open_=False)
    return _with(
        opening,
        Reason.SOFT_PASSBACK,
        "plate recorded inside; soft anti-passback",
        open_=True,
        flags=(*opening.flags, "passback"),
    )


def _drive_up_candidate(c: CandidateFacts, at: _Moment) -> bool:
    """No booking, no list entry, read exactly (or of a plate the cache does not hold)."""
    return (
        at.rules.drive_up
        and not c.reservations
        and not c.list_entries
        and c.match.kind in (MatchKind.EXACT, MatchKind.NONE)
    )


def _drive_up(base: Decision, c: CandidateFacts, at: _Moment) -> Decision:
    """A drive-up visitor: admitted while a drive-up space is free."""
    plate = c.match.plate or c.read_text
    if not plausible_plate(plate):
        return _with(base, Reason.LOW_CONFIDENCE, "read is not a plausible plate for a drive-up")
    free = at.rules.drive_up_spaces - at.lot.drive_up_inside
    if free <= 0:
        detail = f"no free drive-up space ({at.lot.drive_up_inside} inside)"
        return _with(base, Reason.LOT_FULL, detail)
    opening = _with(base, Reason.DRIVE_UP, f"{free} drive-up spaces free", open_=True)
    return replace(opening, stay_kind=StayKind.DRIVE_UP)


def _entry_denial(base: Decision, c: CandidateFacts, now: datetime, rules: LotRules) -> Decision:
    graded = [(reason, r) for r in c.reservations if (reason := _reservation_reason(r, now, rules))]
    if not graded:
        return _with(base, Reason.NO_RESERVATION, "no reservation for this plate")
    reason, reservation = min(graded, key=lambda g: (_RANK[g[0]], g[1].starts_at))
    return _with(base, reason, f"reservation status {reservation.status}", reservation=reservation)


def _reservation_reason(r: Reservation, now: datetime, rules: LotRules) -> Reason | None:
    """Why this reservation does not admit the car now (None: it does)."""
    if r.status is ReservationStatus.CANCELLED:
        return Reason.CANCELLED
    if r.status in _FINISHED or now >= r.ends_at + rules.late_grace:
        return Reason.EXPIRED
    if now < r.starts_at - rules.early_grace:
        return Reason.TOO_EARLY
    if r.status is ReservationStatus.PENDING:
        return Reason.NOT_PAID
    return None


def _judge_exit(base: Decision, c: CandidateFacts, at: _Moment) -> Decision:
    now, rules = at.now, at.rules
    if at.listed(c, ListKind.ALLOW):
        return _with(base, Reason.ALLOWLISTED, "allow-list entry valid now", open_=True)
    stay_kind = c.presence.kind if c.presence is not None else StayKind.BOOKING
    visit = None if stay_kind is not StayKind.BOOKING else _visit_reservation(c, now, rules)
    if c.presence is None and visit is None:
        if c.reservations:
            return _with(base, Reason.CANCELLED, "only cancelled reservations, not inside")
        return _with(base, Reason.NO_RESERVATION, "unknown plate not recorded inside")
    currency = _currency(visit, rules)
    try:
        gross = _stay_price(c, stay_kind, visit, at)
        owed, paid_now = _after_payments(c, gross, currency, at)
    except ValueError as exc:  # a price that could be wrong is not guessed: hold, say why
        detail = f"stay cannot be priced at the gate: {exc}"
        return _with(base, Reason.PAYMENT_DUE, detail, reservation=visit)
    if paid_now:
        detail = f"paid through {c.stay_payment.paid_through.isoformat()}" if c.stay_payment else ""
        return _with(base, Reason.PAID, detail, open_=True, reservation=visit, owed=0)
    if owed > 0:
        return _owing(base, owed, gross, visit, currency, at)
    return _with(base, Reason.EXIT_PAID, "nothing owed", open_=True, reservation=visit, owed=0)


def _currency(visit: Reservation | None, rules: LotRules) -> str:
    if visit is not None:
        return visit.currency
    return rules.tariff.currency if rules.tariff is not None else "EUR"


def _stay_price(c: CandidateFacts, kind: StayKind, visit: Reservation | None, at: _Moment) -> int:
    """What the stay owes before payments (``ValueError``: it cannot be priced here)."""
    if kind is StayKind.PERMIT:
        return 0
    if kind is StayKind.DRIVE_UP:
        assert c.presence is not None
        if at.rules.tariff is None:
            raise ValueError("no tariff in force to price a drive-up stay")
        return price_stay(at.rules.tariff, c.presence.entered_at, at.now)
    return 0 if visit is None else owed_now(visit, at.now, at.rules)


def _after_payments(c: CandidateFacts, gross: int, currency: str, at: _Moment) -> tuple[int, bool]:
    """(what is still owed, whether the stay is paid through now). A payment counts only in the
    currency the stay is priced in (``ValueError`` otherwise: never mix money)."""
    paid = c.stay_payment
    if paid is None:
        return gross, False
    if paid.currency != currency:
        raise ValueError(f"the stay's payment is in {paid.currency}, its price in {currency}")
    if at.now <= paid.paid_through + at.rules.paid_exit:
        return 0, True
    return max(0, gross - paid.paid_cents), False


def _owing(
    base: Decision,
    owed: int,
    gross: int,
    visit: Reservation | None,
    currency: str,
    at: _Moment,
) -> Decision:
    """A car that owes ``owed``: held, or let out to be billed (the policy, the cloud's reach)."""
    paid = gross - owed
    detail = f"{owed} owed (stay priced {gross} at the gate, {paid} paid)"
    rules = at.rules
    offline_open = (
        not at.lot.cloud_reachable and rules.offline_exit is OfflineExit.OPEN_AND_BILL_LATER
    )
    if rules.pay_before_exit and not offline_open:
        held = _with(base, Reason.PAYMENT_DUE, detail, reservation=visit, owed=owed)
        return replace(held, currency=currency)
    flags = (*base.flags, "offline") if not at.lot.cloud_reachable else base.flags
    billed = _with(
        base, Reason.BILL_LATER, detail, open_=True, reservation=visit, owed=owed, flags=flags
    )
    return replace(billed, currency=currency)


def owed_now(visit: Reservation, now: datetime, rules: LotRules) -> int:
    """What the visit owes at ``now``: the pushed amount plus the overstay the gate prices with
    the policy's tariff once ``now`` is past the booking's end and the overstay grace.
    ``ValueError`` when the tariff will not price the stay (longer than it prices)."""
    owed = visit.amount_owed_cents
    if rules.tariff is not None and now > visit.ends_at + rules.overstay_grace:
        owed += price_stay(rules.tariff, visit.ends_at, now)
    return owed


def _visit_reservation(c: CandidateFacts, now: datetime, rules: LotRules) -> Reservation | None:
    live = [r for r in c.reservations if r.status is not ReservationStatus.CANCELLED]
    if c.presence is not None and c.presence.reservation_id is not None:
        for r in live:
            if r.id == c.presence.reservation_id:
                return r
    begun = [r for r in live if r.starts_at - rules.early_grace <= now]
    if begun:
        return max(begun, key=lambda r: r.starts_at)
    return min(live, key=lambda r: r.starts_at, default=None)


def _with(
    base: Decision,
    reason: Reason,
    detail: str,
    *,
    open_: bool | None = None,
    reservation: Reservation | None = None,
    flags: tuple[str, ...] | None = None,
    owed: int | None = None,
) -> Decision:
    """A copy of ``base`` with a new verdict (the reservation's id and money when given;
    ``owed`` overrides the reservation's pushed amount)."""
    if owed is None:
        owed = reservation.amount_owed_cents if reservation else base.amount_owed_cents
    return Decision(
        open=base.open if open_ is None else open_,
        reason=reason,
        plate=base.plate,
        read_text=base.read_text,
        confidence=base.confidence,
        reservation_id=reservation.id if reservation else base.reservation_id,
        fuzzy=base.fuzzy,
        amount_owed_cents=owed,
        currency=reservation.currency if reservation else base.currency,
        detail=detail,
        flags=base.flags if flags is None else flags,
        match_reason=base.match_reason,
        stay_id=base.stay_id,
        stay_kind=base.stay_kind,
    )
