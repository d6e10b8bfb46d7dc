from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloud_api.errors import InvalidRequest
from cloud_api.pricing import bookable, early_exit_credit, overstay_charge
from parkgate_protocol import Tariff, VehicleTariff, price_stay

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
TARIFF = Tariff(vehicles={"car": VehicleTariff(rate_cents=250, daily_max_cents=2000)})
H = timedelta(hours=1)
M = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        (timedelta(0), 0),
        (-H, 0),
        (M, 250),  # a started hour counts
        (H, 250),
        (H + M, 500),
        (7 * H, 1750),
        (8 * H, 2000),  # reaches the daily cap
        (23 * H, 2000),
        (24 * H, 2000),
        (24 * H + M, 2250),
        (48 * H, 4000),
        (56 * H, 6000),  # 2 days + 8h capped
    ],
)
def test_hourly_tariff_with_a_daily_cap(span: timedelta, expected: int) -> None:
    """What lots priced before policies (hourly rate, daily cap) is an hourly tariff."""
    assert price_stay(TARIFF, T0, T0 + span, "car") == expected


def test_only_listed_vehicle_types_are_bookable() -> None:
    bookable(TARIFF, "car")
    with pytest.raises(InvalidRequest) as err:
        bookable(TARIFF, "van")
    assert err.value.reason == "no_price"


END = T0 + 4 * H  # a 4-hour stay, paid 1000


@pytest.mark.parametrize(
    ("policy", "fee", "exited_after", "expected"),
    [
        ("none", 0, H, 0),
        ("pro_rata", 0, H, 750),
        ("pro_rata", 0, 90 * M, 625),
        ("pro_rata", 0, 4 * H, 0),
        ("pro_rata", 0, 5 * H, 0),
        ("pro_rata", 0, -H, 1000),  # left before the start: all unused
        ("whole_hours", 0, H, 750),
        ("whole_hours", 0, 61 * M, 500),  # the started second hour is used
        ("whole_hours", 0, 3 * H + 59 * M, 0),
        ("pro_rata_minus_fee", 100, H, 650),
        ("pro_rata_minus_fee", 2000, H, 0),  # never negative
    ],
)
def test_early_exit_credit(policy: str, fee: int, exited_after: timedelta, expected: int) -> None:
    credit = early_exit_credit(
        paid_cents=1000,
        start=T0,
        end=END,
        exited_at=T0 + exited_after,
        tariff=TARIFF,
        vehicle_type="car",
        policy=policy,
        fee_cents=fee,
    )
    assert credit == expected


def test_unknown_policy_is_an_error() -> None:
    with pytest.raises(ValueError, match="policy"):
        early_exit_credit(
            paid_cents=1,
            start=T0,
            end=END,
            exited_at=T0,
            tariff=TARIFF,
            vehicle_type="car",
            policy="bogus",
        )


@pytest.mark.parametrize(
    ("late_by", "grace", "expected"),
    [
        (-H, 10, 0),
        (timedelta(0), 10, 0),
        (10 * M, 10, 0),  # inside the grace
        (11 * M, 10, 250),  # past it: charged from the end
        (61 * M, 10, 500),
        (30 * H, 0, 3500),
    ],
)
def test_overstay_charge(late_by: timedelta, grace: int, expected: int) -> None:
    charge = overstay_charge(
        end=END, exited_at=END + late_by, grace_minutes=grace, tariff=TARIFF, vehicle_type="car"
    )
    assert charge == expected


def test_an_exit_years_late_is_refused_not_priced() -> None:
    with pytest.raises(InvalidRequest) as info:
        overstay_charge(
            end=T0,
            exited_at=T0 + timedelta(days=5000),
            grace_minutes=10,
            tariff=TARIFF,
            vehicle_type="car",
        )
    assert info.value.reason == "unpriceable_stay"
