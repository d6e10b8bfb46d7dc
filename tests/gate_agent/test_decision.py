from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gate_agent.decision import DENIAL_PRIORITY, decide
from gate_agent.domain import (
    AntiPassback,
    CandidateFacts,
    Direction,
    ListEntry,
    ListKind,
    LotRules,
    Match,
    MatchKind,
    Presence,
    Reason,
    Reservation,
    ReservationStatus,
)

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)
RULES = LotRules()  # 15 min grace either side, hard anti-passback, 0.80 / 0.90
PLATE = "AB123CD"
ENTRY, EXIT = Direction.ENTRY, Direction.EXIT
CONFIRMED, PENDING = ReservationStatus.CONFIRMED, ReservationStatus.PENDING


def res(
    start: timedelta = -H,
    end: timedelta = H,
    status: ReservationStatus = CONFIRMED,
    owed: int = 0,
    rid: str = "r1",
) -> Reservation:
    return Reservation(rid, PLATE, NOW + start, NOW + end, status, owed, "EUR", "A1")


def cand(
    *reservations: Reservation,
    kind: MatchKind = MatchKind.EXACT,
    conf: float = 0.95,
    lists: tuple[ListEntry, ...] = (),
    inside: bool = False,
    plate: str = PLATE,
    support: float = 1.0,
) -> CandidateFacts:
    matched = None if kind in (MatchKind.NONE, MatchKind.AMBIGUOUS) else plate
    match = Match(kind, matched, reason=f"{kind.value} (test)", support=support)
    if kind is MatchKind.AMBIGUOUS:
        match = Match(kind, None, (plate, plate + "X"))
    presence = Presence(plate, "v0", NOW - H, reservations[0].id if reservations else None)
    return CandidateFacts(
        read_text=plate,
        confidence=conf,
        match=match,
        reservations=reservations,
        list_entries=lists,
        presence=presence if inside else None,
    )


ALLOW = ListEntry(PLATE, ListKind.ALLOW)
DENY = ListEntry(PLATE, ListKind.DENY)
ALLOW_EXPIRED = ListEntry(PLATE, ListKind.ALLOW, valid_until=NOW)
DENY_FUTURE = ListEntry(PLATE, ListKind.DENY, valid_from=NOW + M)

OPENS, SHUT = True, False
US = timedelta(microseconds=1)
SOFT = replace(RULES, anti_passback=AntiPassback.SOFT)
OFF = replace(RULES, anti_passback=AntiPassback.OFF)
PAY_FIRST = replace(RULES, pay_before_exit=True)
CANCELLED, EXPIRED = ReservationStatus.CANCELLED, ReservationStatus.EXPIRED
COMPLETED = ReservationStatus.COMPLETED
FUZZY, AMBIGUOUS, NO_MATCH = MatchKind.FUZZY, MatchKind.AMBIGUOUS, MatchKind.NONE


def row(
    name: str,
    direction: Direction,
    candidate: CandidateFacts,
    opens: bool,
    reason: Reason,
    *,
    rules: LotRules = RULES,
) -> object:
    return pytest.param(direction, candidate, rules, opens, reason, id=name)


ROWS = [
    row("valid", ENTRY, cand(res()), OPENS, Reason.RESERVATION_VALID),
    row("early-grace-edge", ENTRY, cand(res(start=15 * M)), OPENS, Reason.RESERVATION_VALID),
    row("before-early-grace", ENTRY, cand(res(start=15 * M + US)), SHUT, Reason.TOO_EARLY),
    row("late-grace-last-us", ENTRY, cand(res(end=-15 * M + US)), OPENS, Reason.RESERVATION_VALID),
    row("late-grace-edge", ENTRY, cand(res(end=-15 * M)), SHUT, Reason.EXPIRED),
    row("pending", ENTRY, cand(res(status=PENDING)), SHUT, Reason.NOT_PAID),
    row("cancelled", ENTRY, cand(res(status=CANCELLED)), SHUT, Reason.CANCELLED),
    row("status-expired", ENTRY, cand(res(status=EXPIRED)), SHUT, Reason.EXPIRED),
    row("completed", ENTRY, cand(res(status=COMPLETED)), SHUT, Reason.EXPIRED),
    row("unknown", ENTRY, cand(kind=NO_MATCH), SHUT, Reason.NO_RESERVATION),
    row("known-no-res", ENTRY, cand(), SHUT, Reason.NO_RESERVATION),
    row("ambiguous", ENTRY, cand(res(), kind=AMBIGUOUS), SHUT, Reason.AMBIGUOUS_MATCH),
    row("low-conf", ENTRY, cand(res(), conf=0.79), SHUT, Reason.LOW_CONFIDENCE),
    row("conf-edge", ENTRY, cand(res(), conf=0.80), OPENS, Reason.RESERVATION_VALID),
    row("low-conf-unknown", ENTRY, cand(kind=NO_MATCH, conf=0.5), SHUT, Reason.LOW_CONFIDENCE),
    row("fuzzy-ok", ENTRY, cand(res(), kind=FUZZY, support=0.90), OPENS, Reason.RESERVATION_VALID),
    row(
        "fuzzy-rest-unsure",
        ENTRY,
        cand(res(), kind=FUZZY, support=0.89),
        SHUT,
        Reason.LOW_CONFIDENCE,
    ),
    row("hard-passback", ENTRY, cand(res(), inside=True), SHUT, Reason.ALREADY_INSIDE),
    row("soft-passback", ENTRY, cand(res(), inside=True), OPENS, Reason.SOFT_PASSBACK, rules=SOFT),
    row(
        "passback-off", ENTRY, cand(res(), inside=True), OPENS, Reason.RESERVATION_VALID, rules=OFF
    ),
    row("allowlisted", ENTRY, cand(lists=(ALLOW,)), OPENS, Reason.ALLOWLISTED),
    row("allow-ended", ENTRY, cand(lists=(ALLOW_EXPIRED,)), SHUT, Reason.NO_RESERVATION),
    row("allow-inside-hard", ENTRY, cand(lists=(ALLOW,), inside=True), SHUT, Reason.ALREADY_INSIDE),
    row("denylisted", ENTRY, cand(res(), lists=(ALLOW, DENY)), SHUT, Reason.DENYLISTED),
    row("deny-not-yet", ENTRY, cand(res(), lists=(DENY_FUTURE,)), OPENS, Reason.RESERVATION_VALID),
    row("exit-paid", EXIT, cand(res(), inside=True), OPENS, Reason.EXIT_PAID),
    row("exit-owes", EXIT, cand(res(owed=450), inside=True), OPENS, Reason.BILL_LATER),
    row(
        "exit-owes-pay-first",
        EXIT,
        cand(res(owed=450), inside=True),
        SHUT,
        Reason.PAYMENT_DUE,
        rules=PAY_FIRST,
    ),
    row(
        "exit-overstay-long-after",
        EXIT,
        cand(res(end=-5 * H, start=-9 * H)),
        OPENS,
        Reason.EXIT_PAID,
    ),
    row(
        "exit-allowlisted-owes",
        EXIT,
        cand(res(owed=100), lists=(ALLOW,)),
        OPENS,
        Reason.ALLOWLISTED,
    ),
    row("exit-inside-no-res", EXIT, cand(inside=True), OPENS, Reason.EXIT_PAID),
    row("exit-unknown", EXIT, cand(kind=NO_MATCH), SHUT, Reason.NO_RESERVATION),
    row("exit-known-not-inside", EXIT, cand(), SHUT, Reason.NO_RESERVATION),
    row("exit-cancelled-only", EXIT, cand(res(status=CANCELLED)), SHUT, Reason.CANCELLED),
    row(
        "exit-cancelled-inside",
        EXIT,
        cand(res(status=CANCELLED), inside=True),
        OPENS,
        Reason.EXIT_PAID,
    ),
    row("exit-denylisted", EXIT, cand(res(), lists=(DENY,), inside=True), SHUT, Reason.DENYLISTED),
    row("exit-low-conf", EXIT, cand(res(), conf=0.3, inside=True), SHUT, Reason.LOW_CONFIDENCE),
]


@pytest.mark.parametrize(
    ("direction", "candidate", "rules", "opens", "reason"),
    ROWS,
)
def test_single_candidate_rules(
    direction: Direction,
    candidate: CandidateFacts,
    rules: LotRules,
    opens: bool,
    reason: Reason,
) -> None:
    decision = decide(direction, [candidate], NOW, rules)
    assert (decision.open, decision.reason) == (opens, reason)
    assert decision.read_text == candidate.read_text
    assert decision.fuzzy is (candidate.match.kind is MatchKind.FUZZY)
    assert decision.match_reason == candidate.match.reason  # every verdict says how it matched


def test_no_candidates_is_no_plate() -> None:
    decision = decide(ENTRY, [], NOW, RULES)
    assert (decision.open, decision.reason) == (False, Reason.NO_PLATE)


def test_opening_carries_reservation_and_fuzzy_flag() -> None:
    decision = decide(ENTRY, [cand(res(rid="r9"), kind=MatchKind.FUZZY)], NOW, RULES)
    assert decision.open and decision.fuzzy and decision.reservation_id == "r9"
    assert decision.plate == PLATE


def test_payment_due_says_what_is_owed() -> None:
    owed = replace(res(owed=1250), currency="GBP")
    decision = decide(EXIT, [cand(owed, inside=True)], NOW, RULES)
    assert (decision.amount_owed_cents, decision.currency, decision.reservation_id) == (
        1250,
        "GBP",
        "r1",
    )


def test_soft_passback_is_flagged() -> None:
    rules = replace(RULES, anti_passback=AntiPassback.SOFT)
    decision = decide(ENTRY, [cand(res(), inside=True)], NOW, rules)
    assert decision.flags == ("passback",) and decision.reservation_id == "r1"


def test_exit_uses_the_reservation_presence_recorded() -> None:
    visit = res(rid="r1", owed=300)
    later = res(rid="r2", start=2 * H, end=3 * H)
    decision = decide(EXIT, [cand(visit, later, inside=True)], NOW, PAY_FIRST)
    assert (decision.reason, decision.reservation_id) == (Reason.PAYMENT_DUE, "r1")


def test_entry_prefers_valid_among_several_reservations() -> None:
    old = res(rid="old", start=-9 * H, end=-8 * H)
    current = res(rid="now")
    decision = decide(ENTRY, [cand(old, current)], NOW, RULES)
    assert (decision.open, decision.reservation_id) == (True, "now")


def test_entry_denial_picks_most_informative_reservation() -> None:
    old = res(rid="old", start=-9 * H, end=-8 * H)
    unpaid = res(rid="unpaid", status=PENDING)
    decision = decide(ENTRY, [cand(old, unpaid)], NOW, RULES)
    assert (decision.reason, decision.reservation_id) == (Reason.NOT_PAID, "unpaid")


def test_any_opening_candidate_opens() -> None:
    misread = cand(kind=MatchKind.NONE, plate="ZZ999", conf=0.99)
    good = cand(res(), conf=0.85)
    decision = decide(ENTRY, [misread, good], NOW, RULES)
    assert (decision.open, decision.plate) == (True, PLATE)


def test_best_opening_prefers_exact_over_fuzzy() -> None:
    fuzzy = cand(res(rid="f"), kind=MatchKind.FUZZY, conf=0.99)
    exact = cand(res(rid="e"), conf=0.85)
    assert decide(ENTRY, [fuzzy, exact], NOW, RULES).reservation_id == "e"


def test_denylisted_candidate_denies_the_frame() -> None:
    banned = cand(lists=(ListEntry("BAD1", ListKind.DENY),), plate="BAD1")
    decision = decide(ENTRY, [cand(res()), banned], NOW, RULES)
    assert (decision.open, decision.reason, decision.plate) == (False, Reason.DENYLISTED, "BAD1")


def test_unsure_denylist_read_does_not_block() -> None:
    banned = cand(lists=(ListEntry("BAD1", ListKind.DENY),), plate="BAD1", conf=0.5)
    assert decide(ENTRY, [cand(res()), banned], NOW, RULES).open


@pytest.mark.parametrize(
    ("first", "second", "reason"),
    [
        (cand(kind=MatchKind.NONE), cand(res(status=PENDING)), Reason.NOT_PAID),
        (cand(res(start=2 * H)), cand(res(), inside=True), Reason.ALREADY_INSIDE),
        (cand(kind=MatchKind.AMBIGUOUS), cand(res(), conf=0.2), Reason.AMBIGUOUS_MATCH),
        (cand(res(), conf=0.2), cand(kind=MatchKind.NONE), Reason.LOW_CONFIDENCE),
        (cand(res(end=-H, start=-2 * H)), cand(res(start=H)), Reason.TOO_EARLY),
    ],
)
def test_most_informative_denial_wins(
    first: CandidateFacts, second: CandidateFacts, reason: Reason
) -> None:
    assert decide(ENTRY, [first, second], NOW, RULES).reason is reason
    assert decide(ENTRY, [second, first], NOW, RULES).reason is reason


def test_priority_lists_every_denial_reason_once() -> None:
    openings = {
        Reason.RESERVATION_VALID,
        Reason.ALLOWLISTED,
        Reason.EXIT_PAID,
        Reason.BILL_LATER,
        Reason.MANUAL_OPEN,
        Reason.SOFT_PASSBACK,
        Reason.DRIVE_UP,
        Reason.PAID,
    }
    codes = {r for r in Reason if r.value.startswith("code_") or r is Reason.BOOKING_CODE}
    assert len(set(DENIAL_PRIORITY)) == len(DENIAL_PRIORITY)
    # booking-code reasons rename a plate decision's reason (gate_agent.codes), not ranked here
    assert set(DENIAL_PRIORITY) | openings | codes == set(Reason)
