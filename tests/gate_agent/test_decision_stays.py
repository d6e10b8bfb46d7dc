"""The decision for stays (issue 13): drive-up admission against the free drive-up spaces, the
exit priced per stay kind (drive-up, booking overstay, permit), stay payments and their paid
window, and pay before exit online and offline. Every owing exit here has a row that would
catch a free ride: a car that owes must be held (or billed, journaled with the amount)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gate_agent import domain
from gate_agent.decision import decide, plausible_plate
from gate_agent.domain import (
    CandidateFacts,
    Direction,
    LotRules,
    LotState,
    MatchKind,
    OfflineExit,
    Reason,
    StayKind,
    StayPayment,
)
from parkgate_protocol import Tariff, VehicleTariff, price_stay

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
H, M = timedelta(hours=1), timedelta(minutes=1)
PLATE = "AB123CD"
ENTRY, EXIT = Direction.ENTRY, Direction.EXIT
HOURLY = Tariff(vehicles={"car": VehicleTariff(rate_cents=250, daily_max_cents=1500)})
DRIVE_UP = LotRules(tariff=HOURLY, drive_up=True, drive_up_spaces=2, pay_before_exit=True)
BILL = replace(DRIVE_UP, pay_before_exit=False)
OFFLINE = LotState(cloud_reachable=False)


def unknown(text: str = PLATE, confidence: float = 0.95) -> CandidateFacts:
    """A read of a plate the cache does not hold."""
    return CandidateFacts(text, confidence, domain.Match(MatchKind.NONE, reason="no match"))


def known(
    *reservations: domain.Reservation,
    inside: timedelta | None = None,
    kind: StayKind = StayKind.DRIVE_UP,
    paid: StayPayment | None = None,
    lists: tuple[domain.ListEntry, ...] = (),
    match: MatchKind = MatchKind.EXACT,
) -> CandidateFacts:
    presence = None
    if inside is not None:
        rid = reservations[0].id if reservations else None
        presence = domain.Presence(PLATE, "stay-1", NOW - inside, rid, kind)
    return CandidateFacts(
        PLATE,
        0.95,
        domain.Match(match, PLATE, reason=match.value),
        reservations,
        lists,
        presence,
        paid,
    )


def booking(end: timedelta = H, owed: int = 0) -> domain.Reservation:
    return domain.Reservation(
        "r1", PLATE, NOW - 2 * H, NOW + end, domain.ReservationStatus.CONFIRMED, owed, "EUR"
    )


def paid(through: timedelta, cents: int, currency: str = "EUR") -> StayPayment:
    return StayPayment("stay-1", cents, NOW + through, currency)


THREE_HOURS = price_stay(HOURLY, NOW - 3 * H, NOW)  # 750


@pytest.mark.parametrize(
    ("candidate", "rules", "lot", "opens", "reason"),
    [
        pytest.param(unknown(), DRIVE_UP, LotState(0), True, Reason.DRIVE_UP, id="free"),
        pytest.param(unknown(), DRIVE_UP, LotState(1), True, Reason.DRIVE_UP, id="last-space"),
        pytest.param(unknown(), DRIVE_UP, LotState(2), False, Reason.LOT_FULL, id="full"),
        pytest.param(unknown(), DRIVE_UP, LotState(5), False, Reason.LOT_FULL, id="over-full"),
        pytest.param(
            unknown(),
            replace(DRIVE_UP, drive_up=False),
            LotState(0),
            False,
            Reason.NO_RESERVATION,
            id="policy-off",
        ),
        pytest.param(
            unknown(confidence=0.79),
            DRIVE_UP,
            LotState(0),
            False,
            Reason.LOW_CONFIDENCE,
            id="unsure-read",
        ),
        pytest.param(
            unknown("HOTEL"),
            DRIVE_UP,
            LotState(0),
            False,
            Reason.LOW_CONFIDENCE,
            id="a-sign-not-a-plate",
        ),
        pytest.param(
            unknown("7"), DRIVE_UP, LotState(0), False, Reason.LOW_CONFIDENCE, id="garbage"
        ),
        pytest.param(
            known(inside=H),
            DRIVE_UP,
            LotState(1),
            False,
            Reason.ALREADY_INSIDE,
            id="hard-passback",
        ),
        pytest.param(
            known(match=MatchKind.FUZZY),
            DRIVE_UP,
            LotState(0),
            False,
            Reason.NO_RESERVATION,
            id="fuzzy-never-drive-up",
        ),
        pytest.param(
            known(booking(end=-H)),
            DRIVE_UP,
            LotState(0),
            False,
            Reason.EXPIRED,
            id="a-booking-says-why-not",
        ),
        pytest.param(
            known(lists=(domain.ListEntry(PLATE, domain.ListKind.DENY),)),
            DRIVE_UP,
            LotState(0),
            False,
            Reason.DENYLISTED,
            id="denylisted",
        ),
    ],
)
def test_drive_up_entry(
    candidate: CandidateFacts, rules: LotRules, lot: LotState, opens: bool, reason: Reason
) -> None:
    decision = decide(ENTRY, [candidate], NOW, rules, "entry-1", lot)
    assert (decision.open, decision.reason) == (opens, reason)
    if opens:
        assert decision.stay_kind is StayKind.DRIVE_UP
        assert decision.amount_owed_cents == 0


def test_entry_stay_kinds() -> None:
    allowed = known(lists=(domain.ListEntry(PLATE, domain.ListKind.ALLOW),))
    assert decide(ENTRY, [allowed], NOW, DRIVE_UP).stay_kind is StayKind.PERMIT
    assert decide(ENTRY, [known(booking())], NOW, DRIVE_UP).stay_kind is StayKind.BOOKING


@pytest.mark.parametrize(
    ("candidate", "rules", "lot", "opens", "reason", "owed"),
    [
        # a drive-up owes the whole stay, priced with the tariff
        pytest.param(
            known(inside=3 * H),
            DRIVE_UP,
            LotState(),
            False,
            Reason.PAYMENT_DUE,
            THREE_HOURS,
            id="drive-up-held",
        ),
        pytest.param(
            known(inside=3 * H),
            BILL,
            LotState(),
            True,
            Reason.BILL_LATER,
            THREE_HOURS,
            id="drive-up-billed",
        ),
        # paid through a moment: free to leave for paid_exit (15 min) after it
        pytest.param(
            known(inside=3 * H, paid=paid(-M, THREE_HOURS)),
            DRIVE_UP,
            LotState(),
            True,
            Reason.PAID,
            0,
            id="paid-through-now",
        ),
        pytest.param(
            known(inside=3 * H, paid=paid(-14 * M, 500)),
            DRIVE_UP,
            LotState(),
            True,
            Reason.PAID,
            0,
            id="inside-paid-window",
        ),
        pytest.param(
            known(inside=3 * H, paid=paid(-16 * M, 500)),
            DRIVE_UP,
            LotState(),
            False,
            Reason.PAYMENT_DUE,
            THREE_HOURS - 500,
            id="past-paid-window",
        ),
        pytest.param(
            known(inside=3 * H, paid=paid(-16 * M, THREE_HOURS)),
            DRIVE_UP,
            LotState(),
            True,
            Reason.EXIT_PAID,
            0,
            id="late-but-covered",
        ),
        pytest.param(
            known(inside=3 * H, paid=paid(-M, 500, "GBP")),
            DRIVE_UP,
            LotState(),
            False,
            Reason.PAYMENT_DUE,
            0,
            id="payment-in-another-currency",
        ),
        # offline: the policy decides for a car that owes
        pytest.param(
            known(inside=3 * H),
            DRIVE_UP,
            OFFLINE,
            False,
            Reason.PAYMENT_DUE,
            THREE_HOURS,
            id="offline-hold",
        ),
        pytest.param(
            known(inside=3 * H),
            replace(DRIVE_UP, offline_exit=OfflineExit.OPEN_AND_BILL_LATER),
            OFFLINE,
            True,
            Reason.BILL_LATER,
            THREE_HOURS,
            id="offline-open-and-bill-later",
        ),
        pytest.param(
            known(inside=3 * H),
            replace(DRIVE_UP, offline_exit=OfflineExit.OPEN_AND_BILL_LATER),
            LotState(),
            False,
            Reason.PAYMENT_DUE,
            THREE_HOURS,
            id="online-still-held",
        ),
        # a drive-up within the tariff's free minutes, a permit: nothing owed
        pytest.param(
            known(inside=-M), DRIVE_UP, LotState(), True, Reason.EXIT_PAID, 0, id="drive-up-no-time"
        ),
        pytest.param(
            known(inside=30 * H, kind=StayKind.PERMIT),
            DRIVE_UP,
            LotState(),
            True,
            Reason.EXIT_PAID,
            0,
            id="permit",
        ),
        # a drive-up without a tariff cannot be priced: held, never let out free
        pytest.param(
            known(inside=3 * H),
            replace(DRIVE_UP, tariff=None),
            LotState(),
            False,
            Reason.PAYMENT_DUE,
            0,
            id="drive-up-no-tariff",
        ),
        pytest.param(
            known(inside=4000 * 24 * H),
            BILL,
            LotState(),
            False,
            Reason.PAYMENT_DUE,
            0,
            id="drive-up-unpriceable",
        ),
        # a booking owes its pushed amount plus the overstay past its end and the grace
        pytest.param(
            known(booking(end=-H), inside=3 * H, kind=StayKind.BOOKING),
            DRIVE_UP,
            LotState(),
            False,
            Reason.PAYMENT_DUE,
            price_stay(HOURLY, NOW - H, NOW),
            id="booking-overstay",
        ),
        pytest.param(
            known(booking(end=-5 * M), inside=3 * H, kind=StayKind.BOOKING),
            DRIVE_UP,
            LotState(),
            True,
            Reason.EXIT_PAID,
            0,
            id="booking-in-grace",
        ),
        pytest.param(
            known(
                booking(end=-H, owed=100),
                inside=3 * H,
                kind=StayKind.BOOKING,
                paid=paid(-20 * M, 250),
            ),
            DRIVE_UP,
            LotState(),
            False,
            Reason.PAYMENT_DUE,
            100,
            id="booking-overstay-partly-paid",
        ),
        pytest.param(
            known(booking(end=-H), inside=3 * H, kind=StayKind.BOOKING, paid=paid(-M, 250)),
            DRIVE_UP,
            LotState(),
            True,
            Reason.PAID,
            0,
            id="booking-overstay-paid",
        ),
        pytest.param(
            known(booking(), inside=H, kind=StayKind.BOOKING),
            DRIVE_UP,
            LotState(),
            True,
            Reason.EXIT_PAID,
            0,
            id="booking-on-time",
        ),
    ],
)
def test_exit(
    candidate: CandidateFacts,
    rules: LotRules,
    lot: LotState,
    opens: bool,
    reason: Reason,
    owed: int,
) -> None:
    decision = decide(EXIT, [candidate], NOW, rules, "exit-1", lot)
    assert (decision.open, decision.reason, decision.amount_owed_cents) == (opens, reason, owed)
    assert decision.stay_id == "stay-1"


def test_a_drive_up_never_leaves_free_when_pay_before_exit_is_on() -> None:
    """The free ride: every stay length that prices above zero holds the car."""
    for minutes in range(1, 3 * 24 * 60, 37):
        stay = known(inside=minutes * M)
        decision = decide(EXIT, [stay], NOW, DRIVE_UP)
        price = price_stay(HOURLY, NOW - minutes * M, NOW)
        assert decision.open is (price == 0), minutes
        assert decision.amount_owed_cents == price


def test_the_amount_billed_later_is_the_whole_price_less_payments() -> None:
    stay = known(inside=5 * H, paid=paid(-2 * H, 300))
    decision = decide(EXIT, [stay], NOW, BILL)
    assert decision.reason is Reason.BILL_LATER
    assert decision.amount_owed_cents == price_stay(HOURLY, NOW - 5 * H, NOW) - 300


def test_the_exit_journals_the_stay_id_and_the_entry_its_own_visit() -> None:
    exit_ = decide(EXIT, [known(inside=3 * H)], NOW, DRIVE_UP)
    event = domain.JournalEvent.for_decision(
        exit_, lot_id="1", lane_id="exit-1", direction=EXIT, visit_id="v-exit"
    )
    assert (event.kind, event.stay_id) == (domain.EventKind.DENIED, "stay-1")
    entry = decide(ENTRY, [unknown()], NOW, DRIVE_UP)
    event = domain.JournalEvent.for_decision(
        entry, lot_id="1", lane_id="entry-1", direction=ENTRY, visit_id="v-entry"
    )
    assert (event.kind, event.stay_id) == (domain.EventKind.ENTRY, "v-entry")


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("AB123CD", True),
        ("K179658", True),
        ("1234", False),
        ("HOTEL", False),
        ("A1", False),
        ("AB12345678901", False),
        ("AB-123", False),
    ],
)
def test_plausible_plate(text: str, ok: bool) -> None:
    assert plausible_plate(text) is ok
