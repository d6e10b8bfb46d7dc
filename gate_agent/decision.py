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
   (``denylisted > payment_due > already_inside > not_paid > too_early > expired > cancelled >
   ambiguous_match > low_confidence > no_reservation > no_plate``), ties to the higher confidence.
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
- Exit never traps a car for lack of presence. An allow-listed plate exits with ``allowlisted``.
  The visit's reservation is the one presence recorded, else the latest non-cancelled one that has
  begun (with the early grace), else the next one. What it owes now is its pushed
  ``amount_owed_cents`` plus, with a tariff in the rules and now past ``ends_at +
  overstay_grace``, the overstay ``price_stay(tariff, ends_at, now)``. If that is more than
  nothing, ``pay_before_exit`` holds the car with ``payment_due`` and the amount; without it the
  exit opens with ``bill_later`` and the amount (journaled, the cloud bills). Otherwise
  ``exit_paid``. A car recorded inside with no usable reservation (allow-list or manual entry)
  exits with ``exit_paid``; a plate only holding cancelled reservations and not inside is
  ``cancelled``; an unknown plate not inside is ``no_reservation`` so that an operator looks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gate_agent.domain import (
    AntiPassback,
    CandidateFacts,
    Decision,
    Direction,
    ListKind,
    LotRules,
    MatchKind,
    Reason,
    Reservation,
    ReservationStatus,
)
from parkgate_protocol import price_stay

__all__ = ["DENIAL_PRIORITY", "decide", "owed_now"]

DENIAL_PRIORITY: tuple[Reason, ...] = (
    Reason.DENYLISTED,
    Reason.PAYMENT_DUE,
    Reason.ALREADY_INSIDE,
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
) -> Decision:
    """Judge every candidate plate and combine the verdicts (see the module docstring).

    ``lane_id`` is the deciding lane: list entries naming other lanes do not count on it."""
    if not candidates:
        return Decision(open=False, reason=Reason.NO_PLATE, detail="no plate read")
    at = _Moment(now, rules, lane_id)
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

    def listed(self, c: CandidateFacts, kind: ListKind) -> bool:
        """A list entry of this kind counts for the candidate here and now."""
        return any(e.kind is kind and e.counts_at(self.now, self.lane_id) for e in c.list_entries)

    def blocks_entry(self, c: CandidateFacts) -> bool:
        """The plate is recorded inside, recently enough for anti-passback to care."""
        if c.presence is None or self.rules.anti_passback is AntiPassback.OFF:
            return False
        reset = self.rules.anti_passback_reset
        return reset is None or self.now - c.presence.entered_at < reset


def _judge(direction: Direction, c: CandidateFacts, at: _Moment) -> Decision:
    base = Decision(
        open=False,
        reason=Reason.NO_RESERVATION,
        plate=c.match.plate or c.read_text,
        read_text=c.read_text,
        confidence=c.confidence,
        fuzzy=c.match.kind is MatchKind.FUZZY,
        match_reason=c.match.reason,
    )
    early = _unusable(c, at.rules)
    if early is not None:
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
    elif at.listed(c, ListKind.ALLOW):
        opening = _with(base, Reason.ALLOWLISTED, "allow-list entry valid now", open_=True)
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
    visit = _visit_reservation(c, now, rules)
    try:
        owed = 0 if visit is None else owed_now(visit, now, rules)
    except ValueError as exc:  # a stay the tariff refuses to price (years): a price that could
        detail = f"overstay cannot be priced at the gate: {exc}"  # be wrong is not guessed
        return _with(base, Reason.PAYMENT_DUE, detail, reservation=visit)
    if visit is not None and owed > 0:
        overstay = owed - visit.amount_owed_cents
        detail = f"{owed} owed ({overstay} of it overstay priced at the gate)"
        if rules.pay_before_exit:
            return _with(base, Reason.PAYMENT_DUE, detail, reservation=visit, owed=owed)
        return _with(base, Reason.BILL_LATER, detail, open_=True, reservation=visit, owed=owed)
    if visit is not None or c.presence is not None:
        return _with(base, Reason.EXIT_PAID, "nothing owed", open_=True, reservation=visit)
    if c.reservations:
        return _with(base, Reason.CANCELLED, "only cancelled reservations, not inside")
    return _with(base, Reason.NO_RESERVATION, "unknown plate not recorded inside")


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
    )
