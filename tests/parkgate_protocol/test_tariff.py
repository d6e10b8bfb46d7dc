"""The shared pricing function: table tests, properties, and refusal of absurd tariffs."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from parkgate_protocol import Tariff, TariffBand, VehicleTariff, price_stay

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday
HOURLY = Tariff(vehicles={"car": VehicleTariff(rate_cents=250, daily_max_cents=1500)})


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


@pytest.mark.parametrize(
    ("length", "cents"),
    [
        (timedelta(0), 0),
        (timedelta(minutes=-5), 0),
        (timedelta(microseconds=1), 250),  # any started hour is an hour: never free by rounding
        (timedelta(milliseconds=400), 250),
        (timedelta(seconds=1), 250),
        (hours(1), 250),
        (hours(1) + timedelta(seconds=1), 500),
        (hours(1) + timedelta(microseconds=1), 500),
        (hours(5), 1250),
        (hours(7), 1500),  # capped for the day
        (hours(24), 1500),
        (hours(25), 1750),
        (hours(48), 3000),
    ],
)
def test_hourly_with_a_daily_max(length: timedelta, cents: int) -> None:
    assert price_stay(HOURLY, T0, T0 + length) == cents


def test_free_minutes_then_charged_from_the_start() -> None:
    tariff = Tariff(vehicles={"car": VehicleTariff(rate_cents=100, free_minutes=15)})
    assert price_stay(tariff, T0, T0 + timedelta(minutes=15)) == 0
    assert price_stay(tariff, T0, T0 + timedelta(minutes=16)) == 100


def test_blocks_of_fifteen_minutes() -> None:
    tariff = Tariff(vehicles={"car": VehicleTariff(block_minutes=15, rate_cents=60)})
    assert price_stay(tariff, T0, T0 + timedelta(minutes=31)) == 180


def test_per_vehicle_type_with_car_as_the_fall_back() -> None:
    tariff = Tariff(
        vehicles={"car": VehicleTariff(rate_cents=300), "motorcycle": VehicleTariff(rate_cents=100)}
    )
    assert price_stay(tariff, T0, T0 + hours(2), "motorcycle") == 200
    assert price_stay(tariff, T0, T0 + hours(2), "van") == 600
    assert price_stay(tariff, T0, T0 + hours(2)) == 600


NIGHT = TariffBand(name="night", start=time(22), end=time(6), rate_cents=50)
WEEKEND = TariffBand(
    name="weekend", days=frozenset({5, 6}), start=time(0), end=time(0), rate_cents=80
)
BANDED = Tariff(
    timezone="Europe/Berlin",
    vehicles={"car": VehicleTariff(rate_cents=200, bands=(NIGHT, WEEKEND))},
)


def test_night_band_in_local_time() -> None:
    # 20:00 UTC is 21:00 in Berlin (winter): one day block, then night blocks from 22:00 local.
    start = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)
    assert price_stay(BANDED, start, start + hours(3)) == 200 + 50 + 50


def test_a_night_band_that_started_the_evening_before_only_if_that_day_is_in_it() -> None:
    friday_night_only = TariffBand(
        name="fri", days=frozenset({4}), start=time(22), end=time(6), rate_cents=10
    )
    tariff = Tariff(vehicles={"car": VehicleTariff(rate_cents=100, bands=(friday_night_only,))})
    saturday_2am = datetime(2026, 3, 7, 2, 0, tzinfo=UTC)
    sunday_2am = datetime(2026, 3, 8, 2, 0, tzinfo=UTC)
    assert price_stay(tariff, saturday_2am, saturday_2am + hours(1)) == 10
    assert price_stay(tariff, sunday_2am, sunday_2am + hours(1)) == 100


def test_weekend_band_all_day() -> None:
    saturday_noon = datetime(2026, 3, 7, 11, 0, tzinfo=UTC)  # 12:00 in Berlin
    assert price_stay(BANDED, saturday_noon, saturday_noon + hours(2)) == 160


def test_refuses_naive_times_and_absurd_lengths() -> None:
    with pytest.raises(ValueError):
        price_stay(HOURLY, T0.replace(tzinfo=None), T0.replace(tzinfo=None) + hours(1))
    with pytest.raises(ValueError):
        price_stay(HOURLY, T0, T0 + timedelta(days=4000))


@pytest.mark.parametrize(
    "bad",
    [
        {"vehicles": {"car": {"rate_cents": -1}}},
        {"vehicles": {"car": {"rate_cents": 10**9}}},
        {"vehicles": {"car": {"rate_cents": 100, "block_minutes": 0}}},
        {"vehicles": {"car": {"rate_cents": 100, "daily_max_cents": -5}}},
        {"vehicles": {"van": {"rate_cents": 100}}},
        {"vehicles": {}},
        {"timezone": "Mars/Olympus", "vehicles": {"car": {"rate_cents": 100}}},
        {"currency": "euro", "vehicles": {"car": {"rate_cents": 100}}},
        {"vehicles": {"car": {"rate_cents": 100, "surprise": 1}}},
    ],
)
def test_absurd_tariffs_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Tariff.model_validate(bad)


stays = st.tuples(
    st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(min_value=0, max_value=60 * 24 * 40),
)
vehicle_tariffs = st.builds(
    VehicleTariff,
    block_minutes=st.sampled_from([1, 5, 15, 30, 60, 120]),
    rate_cents=st.integers(0, 2000),
    free_minutes=st.integers(0, 30),
    daily_max_cents=st.one_of(st.none(), st.integers(0, 10_000)),
    bands=st.one_of(st.just(()), st.just((NIGHT,)), st.just((NIGHT, WEEKEND))),
)


@settings(max_examples=300, deadline=None)
@given(stay=stays, vehicle=vehicle_tariffs, more=st.integers(1, 600))
def test_a_longer_stay_never_costs_less(
    stay: tuple[datetime, int], vehicle: VehicleTariff, more: int
) -> None:
    tariff = Tariff(timezone="Europe/Berlin", vehicles={"car": vehicle})
    start, minutes = stay
    end = start + timedelta(minutes=minutes)
    shorter = price_stay(tariff, start, end)
    longer = price_stay(tariff, start, end + timedelta(minutes=more))
    assert longer >= shorter >= 0
    if vehicle.daily_max_cents is not None:
        started_days = -(-max(minutes, 1) // (60 * 24))
        assert shorter <= started_days * vehicle.daily_max_cents


@settings(max_examples=200, deadline=None)
@given(stay=stays, vehicle=vehicle_tariffs)
def test_the_wire_form_prices_the_same(stay: tuple[datetime, int], vehicle: VehicleTariff) -> None:
    """What the cloud prices and what the gate prices after the tariff crossed the wire agree."""
    tariff = Tariff(timezone="Europe/Berlin", vehicles={"car": vehicle, "van": vehicle})
    received = Tariff.model_validate_json(tariff.model_dump_json())
    start, minutes = stay
    end = start + timedelta(minutes=minutes)
    for kind in ("car", "van", "bicycle"):
        assert price_stay(received, start, end, kind) == price_stay(tariff, start, end, kind)


positive_tariffs = st.builds(
    VehicleTariff,
    block_minutes=st.sampled_from([1, 5, 15, 30, 60, 120, 1440]),
    rate_cents=st.integers(1, 2000),
    free_minutes=st.integers(0, 30),
    daily_max_cents=st.one_of(st.none(), st.integers(1, 10_000)),
)


@settings(max_examples=300, deadline=None)
@given(
    start=stays.map(lambda stay: stay[0]),
    vehicle=positive_tariffs,
    length_us=st.one_of(
        st.integers(1, 2_000_000),  # up to two seconds, to the microsecond
        st.integers(1, 40 * 24 * 3600 * 10**6),
    ),
)
def test_no_stay_with_a_positive_tariff_is_free_unless_the_grace_says_so(
    start: datetime, vehicle: VehicleTariff, length_us: int
) -> None:
    """Only ``free_minutes`` makes a stay free: a stay of a fraction of a second costs its first
    block, exactly as the gate and the cloud (both running price_stay) ask at the exit."""
    tariff = Tariff(vehicles={"car": vehicle})
    length = timedelta(microseconds=length_us)
    cents = price_stay(tariff, start, start + length)
    if length <= timedelta(minutes=vehicle.free_minutes):
        assert cents == 0
    else:
        first_block = min(vehicle.rate_cents, vehicle.daily_max_cents or vehicle.rate_cents)
        assert cents >= first_block > 0
