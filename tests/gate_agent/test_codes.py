"""Booking codes decided by the plate rules (gate_agent.codes): a table of verdicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gate_agent.codes import code_decision, suffix_matches
from gate_agent.domain import (
    AntiPassback,
    CandidateFacts,
    Decision,
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
from parkgate_protocol import AccessCodeError

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
PLATE = "QR1234"
ENTRY, EXIT = Direction.ENTRY, Direction.EXIT
RULES = LotRules()


def booking(
    status: ReservationStatus = ReservationStatus.CONFIRMED,
    start: timedelta = -H,
    end: timedelta = H,
    owed: int = 0,
) -> Reservation:
    return Reservation("bk_1", PLATE, NOW + start, NOW + end, status, amount_owed_cents=owed)


def facts(*, inside: bool = False, entries: tuple[ListEntry, ...] = ()) -> CandidateFacts:
    presence = Presence(PLATE, "v0", NOW - H, "bk_1") if inside else None
    return CandidateFacts(
        PLATE, 1.0, Match(MatchKind.EXACT, PLATE), (booking(),), entries, presence
    )


def judge(
    reservation: Reservation | None = None,
    f: CandidateFacts | None = None,
    direction: Direction = ENTRY,
    rules: LotRules = RULES,
    read_text: str | None = None,
) -> Decision:
    reservation = booking() if reservation is None else reservation
    return code_decision(
        direction, "bk_1", reservation, f or facts(), NOW, rules, lane_id="in", read_text=read_text
    )


def test_a_valid_booking_opens_with_booking_code_on_the_bookings_plate() -> None:
    d = judge(read_text="K179658")
    assert d.open and d.reason is Reason.BOOKING_CODE
    assert (d.plate, d.read_text, d.reservation_id) == (PLATE, "K179658", "bk_1")
    assert d.flags == ("booking_code", "plate_differs") and d.confidence == 1.0
    same = judge(read_text=PLATE)
    assert same.open and same.flags == ("booking_code",)


@pytest.mark.parametrize(
    ("reservation", "reason"),
    [
        (booking(ReservationStatus.CANCELLED), Reason.CODE_CANCELLED),
        (booking(start=-3 * H, end=-2 * H), Reason.CODE_EXPIRED),
        (booking(ReservationStatus.COMPLETED), Reason.CODE_EXPIRED),
        (booking(start=2 * H, end=3 * H), Reason.TOO_EARLY),
        (booking(ReservationStatus.PENDING), Reason.NOT_PAID),
    ],
)
def test_the_bookings_state_refuses_with_its_reason(
    reservation: Reservation, reason: Reason
) -> None:
    d = judge(reservation)
    assert not d.open and d.reason is reason and "booking_code" in d.flags


@pytest.mark.parametrize("mode", [AntiPassback.HARD, AntiPassback.SOFT, AntiPassback.OFF])
def test_a_code_enters_once_until_an_exit_whatever_the_passback_mode(mode: AntiPassback) -> None:
    d = judge(f=facts(inside=True), rules=LotRules(anti_passback=mode))
    if mode is AntiPassback.OFF:  # the lot ignores presence altogether: so does the code
        assert d.open and d.reason is Reason.BOOKING_CODE
    else:
        assert not d.open and d.reason is Reason.CODE_USED


def test_a_deny_listed_car_stays_out_and_an_allow_list_entry_does_not_stand_in() -> None:
    deny = ListEntry(PLATE, ListKind.DENY)
    assert judge(f=facts(entries=(deny,))).reason is Reason.DENYLISTED
    allow = ListEntry(PLATE, ListKind.ALLOW)
    d = judge(booking(ReservationStatus.CANCELLED), f=facts(entries=(allow,)))
    assert not d.open and d.reason is Reason.CODE_CANCELLED


def test_refusals_and_unknown_bookings() -> None:
    for reason in ("code_invalid", "code_other_lot", "code_expired"):
        d = code_decision(
            ENTRY, AccessCodeError(reason, "why"), None, None, NOW, LotRules(), read_text="K1"
        )
        assert not d.open and d.reason.value == reason and d.read_text == "K1" and d.plate is None
    d = code_decision(ENTRY, "bk_9", None, None, NOW, LotRules())
    assert not d.open and d.reason is Reason.NO_RESERVATION


def test_at_an_exit_the_money_rules_stand() -> None:
    inside = facts(inside=True)
    owing = judge(booking(owed=300), inside, EXIT, LotRules(pay_before_exit=True))
    assert not owing.open and owing.reason is Reason.PAYMENT_DUE and owing.amount_owed_cents == 300
    billed = judge(booking(owed=300), inside, EXIT, LotRules(pay_before_exit=False))
    assert billed.open and billed.reason is Reason.BILL_LATER and billed.amount_owed_cents == 300
    free = judge(booking(), inside, EXIT)
    assert free.open and free.reason is Reason.EXIT_PAID and "booking_code" in free.flags


@pytest.mark.parametrize(
    ("typed", "ok"),
    [
        ("234", True),
        ("2 34", True),
        ("234\n", True),
        ("z34", False),
        ("1234", False),
        ("34", False),
        ("", False),
        ("２３４", False),
    ],
)
def test_the_plate_ending(typed: str, ok: bool) -> None:
    assert suffix_matches(PLATE, typed) is ok
