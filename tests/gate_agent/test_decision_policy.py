"""The decision under a lot's cloud policy: access-list windows and lanes, the anti-passback
reset, overstay priced with the policy's tariff, pay before exit on and off; and a property that
what the exit asks is ``price_stay`` on the policy exactly as the cloud sent it over the wire."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gate_agent import domain
from gate_agent.decision import decide
from gate_agent.domain import CandidateFacts, Direction, LotRules, MatchKind, Reason
from gate_agent.rules import rules_in_force
from parkgate_protocol import (
    ChangeKind,
    LotPolicy,
    ReservationChange,
    Tariff,
    VehicleTariff,
    encode,
    parse_policy,
    parse_reservation_change,
    price_stay,
)
from tests.support.tariffs import tariffs as random_tariffs

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
H, M = timedelta(hours=1), timedelta(minutes=1)
OPENS, SHUT = True, False
DENIED, ALLOWED, NONE = Reason.DENYLISTED, Reason.ALLOWLISTED, Reason.NO_RESERVATION
VALID, FUZZY, LOW = Reason.RESERVATION_VALID, MatchKind.FUZZY, Reason.LOW_CONFIDENCE
PLATE = "AB123CD"
ENTRY, EXIT = Direction.ENTRY, Direction.EXIT
HOURLY = Tariff(vehicles={"car": VehicleTariff(rate_cents=250, daily_max_cents=1500)})
PRICED = LotRules(tariff=HOURLY, pay_before_exit=True)  # overstay grace 10 min


def booking(start: timedelta = -H, end: timedelta = H, owed: int = 0) -> domain.Reservation:
    return domain.Reservation(
        "r1", PLATE, NOW + start, NOW + end, domain.ReservationStatus.CONFIRMED, owed, "EUR", None
    )


def facts(
    *reservations: domain.Reservation,
    lists: tuple[domain.ListEntry, ...] = (),
    entered: timedelta | None = None,
    kind: MatchKind = MatchKind.EXACT,
    support: float = 1.0,
) -> CandidateFacts:
    presence = None
    if entered is not None:
        rid = reservations[0].id if reservations else None
        presence = domain.Presence(PLATE, "v0", NOW - entered, rid)
    return CandidateFacts(
        PLATE,
        0.95,
        domain.Match(kind, PLATE, reason=kind.value, support=support),
        reservations,
        lists,
        presence,
    )


def allow(**kw: Any) -> domain.ListEntry:
    return domain.ListEntry(PLATE, domain.ListKind.ALLOW, **kw)


def deny(**kw: Any) -> domain.ListEntry:
    return domain.ListEntry(PLATE, domain.ListKind.DENY, **kw)


def case(name: str, d: Direction, c: CandidateFacts, lane: str, opens: bool, why: Reason) -> Any:
    return pytest.param(d, c, lane, opens, why, id=name)


BOOKED = booking()
IN, OUT = "in-1", "out-1"


@pytest.mark.parametrize(
    ("direction", "candidate", "lane", "opens", "reason"),
    [
        case("deny-beats-a-paid-booking", ENTRY, facts(BOOKED, lists=(deny(),)), IN, SHUT, DENIED),
        case("allow-opens-without-booking", ENTRY, facts(lists=(allow(),)), IN, OPENS, ALLOWED),
        case("early-allow", ENTRY, facts(lists=(allow(valid_from=NOW + M),)), IN, SHUT, NONE),
        case("allow-after-window", ENTRY, facts(lists=(allow(valid_until=NOW),)), IN, SHUT, NONE),
        case("old-deny", ENTRY, facts(BOOKED, lists=(deny(valid_until=NOW),)), IN, OPENS, VALID),
        case("allow-other-lane", ENTRY, facts(lists=(allow(lanes=("in-2",)),)), IN, SHUT, NONE),
        case("allow-this-lane", ENTRY, facts(lists=(allow(lanes=(IN, "x")),)), IN, OPENS, ALLOWED),
        case("deny-elsewhere", ENTRY, facts(BOOKED, lists=(deny(lanes=("x",)),)), IN, OPENS, VALID),
        case("deny-this-exit", EXIT, facts(BOOKED, lists=(deny(lanes=(OUT,)),)), OUT, SHUT, DENIED),
        case("fuzzy-allow", ENTRY, facts(lists=(allow(),), kind=FUZZY), IN, OPENS, ALLOWED),
        case(
            "unsure-fuzzy", ENTRY, facts(lists=(allow(),), kind=FUZZY, support=0.5), IN, SHUT, LOW
        ),
        case("allow-and-deny", ENTRY, facts(lists=(allow(), deny())), IN, SHUT, DENIED),
    ],
)
def test_access_lists(
    direction: Direction, candidate: CandidateFacts, lane: str, opens: bool, reason: Reason
) -> None:
    d = decide(direction, [candidate], NOW, LotRules(), lane)
    assert (d.open, d.reason) == (opens, reason)


def test_a_lane_less_check_counts_lane_limited_entries() -> None:
    """The status page's "why" (no lane) still shows what a lane-limited entry does."""
    d = decide(ENTRY, [facts(lists=(allow(lanes=("in-2",)),))], NOW, LotRules())
    assert d.reason is Reason.ALLOWLISTED


@pytest.mark.parametrize(
    ("entered", "reset_hours", "reason"),
    [
        (2 * H, None, Reason.ALREADY_INSIDE),
        (2 * H, 3, Reason.ALREADY_INSIDE),
        (3 * H, 3, Reason.RESERVATION_VALID),  # exactly the reset: no longer blocks
        (30 * H, 24, Reason.RESERVATION_VALID),
    ],
)
def test_anti_passback_reset(entered: timedelta, reset_hours: int | None, reason: Reason) -> None:
    reset = None if reset_hours is None else timedelta(hours=reset_hours)
    rules = LotRules(anti_passback=domain.AntiPassback.HARD, anti_passback_reset=reset)
    assert decide(ENTRY, [facts(booking(), entered=entered)], NOW, rules).reason is reason


@pytest.mark.parametrize(
    ("end", "pushed", "owed"),
    [
        (H, 0, 0),  # inside the booking
        (-10 * M, 0, 0),  # inside the overstay grace (10 min)
        (-10 * M - timedelta(seconds=1), 0, 250),  # past it: priced from the booking's end
        (-3 * H - M, 0, 1000),  # four started hours
        (-30 * H, 0, 1500 + 1500),  # a day capped, then six hours capped again
        (-2 * H, 400, 400 + 500),  # the cloud's pushed amount plus the overstay
        (H, 700, 700),  # the pushed amount alone
    ],
)
def test_overstay_priced_with_the_policy_tariff(end: timedelta, pushed: int, owed: int) -> None:
    candidate = facts(booking(start=-5 * H, end=end, owed=pushed), entered=5 * H)
    d = decide(EXIT, [candidate], NOW, PRICED, "out-1")
    assert d.amount_owed_cents == owed
    assert (d.open, d.reason) == (
        (True, Reason.EXIT_PAID) if owed == 0 else (False, Reason.PAYMENT_DUE)
    )
    assert d.reservation_id == "r1"


@pytest.mark.parametrize("pay_first", [True, False])
def test_a_stay_too_long_to_price_holds_the_car_whatever_the_policy(pay_first: bool) -> None:
    """A booking that ended over ten years ago (a clock or data error): no price is guessed and
    the exit does not open on its own."""
    ancient = booking(start=-4000 * 24 * H, end=-3990 * 24 * H)
    rules = replace(PRICED, pay_before_exit=pay_first)
    d = decide(EXIT, [facts(ancient, entered=4000 * 24 * H)], NOW, rules, "out-1")
    assert (d.open, d.reason) == (False, Reason.PAYMENT_DUE)
    assert "cannot be priced" in d.detail


def test_without_a_tariff_the_gate_prices_no_overstay() -> None:
    candidate = facts(booking(start=-5 * H, end=-3 * H), entered=5 * H)
    d = decide(EXIT, [candidate], NOW, LotRules(), "out-1")
    assert (d.open, d.reason, d.amount_owed_cents) == (True, Reason.EXIT_PAID, 0)


def test_pay_before_exit_off_opens_and_carries_the_amount() -> None:
    candidate = facts(booking(start=-5 * H, end=-2 * H, owed=100), entered=5 * H)
    rules = replace(PRICED, pay_before_exit=False)
    d = decide(EXIT, [candidate], NOW, rules, "out-1")
    assert (d.open, d.reason, d.amount_owed_cents) == (True, Reason.BILL_LATER, 100 + 500)
    assert d.reservation_id == "r1"


def test_an_allowlisted_car_exits_without_paying_an_overstay() -> None:
    candidate = facts(booking(start=-5 * H, end=-2 * H), lists=(allow(),), entered=5 * H)
    d = decide(EXIT, [candidate], NOW, PRICED, "out-1")
    assert (d.open, d.reason, d.amount_owed_cents) == (True, Reason.ALLOWLISTED, 0)


def test_rules_in_force_from_a_policy_and_the_fall_back() -> None:
    fallback = LotRules(early_grace=5 * M)
    assert rules_in_force(None, fallback) is fallback
    wire: dict[str, object] = {"version": 4, "early_grace_minutes": 30, "late_grace_minutes": 0}
    wire |= {"anti_passback": "soft", "anti_passback_reset_hours": 12, "min_confidence": 0.7}
    wire |= {"fuzzy_min_confidence": 0.95, "overstay_grace_minutes": 0, "pay_before_exit": False}
    rules = rules_in_force(parse_policy({**wire, "tariff": HOURLY.model_dump()}), fallback)
    expected = replace(LotRules(), early_grace=30 * M, late_grace=timedelta(0), tariff=HOURLY)
    expected = replace(expected, anti_passback=domain.AntiPassback.SOFT, anti_passback_reset=12 * H)
    expected = replace(expected, min_confidence=0.7, fuzzy_min_confidence=0.95)
    assert rules == replace(expected, overstay_grace=timedelta(0), pay_before_exit=False)


# -- the property: the exit asks price_stay on the policy as sent --------------------------------

tariffs = random_tariffs()


@settings(max_examples=200, deadline=None)
@given(
    tariff=tariffs,
    grace=st.integers(0, 120),
    pushed=st.integers(0, 5000),
    booked=st.timedeltas(min_value=M, max_value=48 * H),
    over=st.timedeltas(min_value=timedelta(0), max_value=10 * 24 * H),
)
def test_the_exit_asks_price_stay_on_the_policy_as_sent(
    tariff: Tariff, grace: int, pushed: int, booked: timedelta, over: timedelta
) -> None:
    sent = LotPolicy(
        version=7, tariff=tariff, overstay_grace_minutes=grace, pay_before_exit=True
    ).to_wire()
    change = ReservationChange(lot_id="lot-1", seq=1, kind=ChangeKind.POLICY, policy=sent)
    received = parse_reservation_change(encode(change))
    assert received.policy is not None
    rules = rules_in_force(parse_policy(received.policy), LotRules())
    ends_at = NOW - over
    stay = domain.Reservation(
        "r1",
        PLATE,
        ends_at - booked,
        ends_at,
        domain.ReservationStatus.CONFIRMED,
        pushed,
        "EUR",
        None,
    )
    d = decide(EXIT, [facts(stay, entered=booked + over)], NOW, rules, "out-1")
    overstay = price_stay(tariff, ends_at, NOW) if over > timedelta(minutes=grace) else 0
    assert d.amount_owed_cents == pushed + overstay
    assert d.open is (pushed + overstay == 0)
