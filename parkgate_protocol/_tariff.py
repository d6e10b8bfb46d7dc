"""A lot's tariff and the one pricing function both sides run.

The cloud prices bookings, overstays and early exits with :func:`price_stay`; the gate prices what
a car owes at the exit with the same function, fed the same :class:`Tariff` pushed with the lot's
policy. Pure: no IO, no clock; times are aware datetimes, money integer minor units.

Rules, per vehicle type (:class:`VehicleTariff`):

- A stay no longer than ``free_minutes`` costs nothing; a longer one is charged from its start.
  That grace is the only way a stay is free: with no grace, any stay longer than zero (even a
  fraction of a second) starts a block and is charged it, as a lot charges any started period.
- The stay is cut into 24-hour periods from its start. Each period is charged per started block of
  ``block_minutes``; a block costs the rate of the band in force at the block's start (local time
  of the lot's ``timezone``; the first band that matches wins, else ``rate_cents``). A period's
  charge is capped at ``daily_max_cents`` when one is set.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["MAX_PRICED_DAYS", "Tariff", "TariffBand", "VehicleTariff", "price_stay"]

DAY = timedelta(days=1)
_MICROSECOND = timedelta(microseconds=1)
MAX_PRICED_DAYS = 3660  # a stay priced over ten years is a clock or data error, not a parking
MAX_RATE_CENTS = 1_000_000  # per block; anything above is a typo, refused
VehicleName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,15}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TariffBand(_Model):
    """A time band with its own block rate, e.g. nights or weekends."""

    name: str = Field(..., min_length=1, max_length=32, description="Shown to operators.")
    days: frozenset[Annotated[int, Field(ge=0, le=6)]] = Field(
        frozenset(range(7)), description="Weekdays the band starts on, 0 = Monday ... 6 = Sunday."
    )
    start: time = Field(..., description="Local start time; a band may run past midnight.")
    end: time = Field(..., description="Local end time (exclusive); equal to start = all day.")
    rate_cents: int = Field(..., ge=0, le=MAX_RATE_CENTS, description="Per started block.")

    @field_validator("start", "end")
    @classmethod
    def _naive_minutes(cls, value: time) -> time:
        if value.tzinfo is not None or value.second or value.microsecond:
            raise ValueError("a band time is a local HH:MM without zone or seconds")
        return value

    def covers(self, local: datetime) -> bool:
        """True when this band is in force at ``local`` (a time in the lot's zone)."""
        clock = local.time().replace(tzinfo=None)
        if self.start == self.end:
            return local.weekday() in self.days
        if self.start < self.end:
            return local.weekday() in self.days and self.start <= clock < self.end
        if clock >= self.start:  # the evening part of a band that runs past midnight
            return local.weekday() in self.days
        return clock < self.end and (local.weekday() - 1) % 7 in self.days


class VehicleTariff(_Model):
    block_minutes: int = Field(60, ge=1, le=1440, description="Charged per started block.")
    rate_cents: int = Field(..., ge=0, le=MAX_RATE_CENTS, description="Per block, outside bands.")
    free_minutes: int = Field(0, ge=0, le=1440, description="Stays this short are free.")
    daily_max_cents: int | None = Field(
        None, ge=0, le=100 * MAX_RATE_CENTS, description="Cap per 24 hours from arrival."
    )
    bands: tuple[TariffBand, ...] = Field((), max_length=16)


class Tariff(_Model):
    """What a lot charges, per vehicle type; ``car`` is the fall-back for unknown types."""

    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")
    timezone: str = Field("UTC", description="IANA zone the bands' local times are in.")
    vehicles: dict[VehicleName, VehicleTariff] = Field(..., min_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value

    @model_validator(mode="after")
    def _has_car(self) -> Tariff:
        if "car" not in self.vehicles:
            raise ValueError("vehicles needs a 'car' entry (the fall-back)")
        return self

    def for_vehicle(self, vehicle_type: str | None) -> VehicleTariff:
        return self.vehicles.get(vehicle_type or "car") or self.vehicles["car"]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _block_rate(tariff: VehicleTariff, zone: ZoneInfo, at: datetime) -> int:
    local = at.astimezone(zone)
    for band in tariff.bands:
        if band.covers(local):
            return band.rate_cents
    return tariff.rate_cents


def _period(tariff: VehicleTariff, zone: ZoneInfo, start: datetime, length: timedelta) -> int:
    """Charge of one period (at most 24 hours) starting at ``start``, before the daily cap."""
    block = timedelta(minutes=tariff.block_minutes)
    blocks = _ceil_div(length // _MICROSECOND, block // _MICROSECOND)  # exact: never truncated
    if not tariff.bands:
        return blocks * tariff.rate_cents
    return sum(_block_rate(tariff, zone, start + i * block) for i in range(blocks))


_FULL_DAYS: dict[tuple[object, ...], int] = {}  # a week of distinct days per tariff and zone


def _full_day(tariff: VehicleTariff, zone: ZoneInfo, start: datetime) -> int:
    """A whole day's charge with bands: the same for every day that starts on the same weekday
    at the same local time under the same UTC offsets, so computed once per such day."""
    local = start.astimezone(zone)
    after = (start + DAY).astimezone(zone)
    key = (tariff, zone.key, local.weekday(), local.time(), local.utcoffset(), after.utcoffset())
    cents = _FULL_DAYS.get(key)
    if cents is None:
        if len(_FULL_DAYS) > 4096:
            _FULL_DAYS.clear()
        cents = _FULL_DAYS[key] = _period(tariff, zone, start, DAY)
    return cents


def _capped(tariff: VehicleTariff, cents: int) -> int:
    return cents if tariff.daily_max_cents is None else min(cents, tariff.daily_max_cents)


def price_stay(
    tariff: Tariff, start: AwareDatetime, end: AwareDatetime, vehicle_type: str | None = None
) -> int:
    """Price in minor units of a stay from ``start`` to ``end`` (0 for an empty or negative one).

    Raises ``ValueError`` for naive times or a stay longer than :data:`MAX_PRICED_DAYS`: a price
    that could be wrong is refused, never guessed.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("price_stay needs timezone-aware times")
    span = end - start
    vehicle = tariff.for_vehicle(vehicle_type)
    if span <= timedelta(0) or span <= timedelta(minutes=vehicle.free_minutes):
        return 0
    days, remainder = divmod(span, DAY)
    if days > MAX_PRICED_DAYS:
        raise ValueError(f"a stay of {days} days is beyond what is priced ({MAX_PRICED_DAYS})")
    zone = ZoneInfo(tariff.timezone)
    total = 0
    for day in range(int(days)):
        day_start = start + day * DAY
        if vehicle.bands:
            total += _capped(vehicle, _full_day(vehicle, zone, day_start))
        else:
            total += _capped(vehicle, _period(vehicle, zone, day_start, DAY))
    if remainder:
        total += _capped(vehicle, _period(vehicle, zone, start + days * DAY, remainder))
    return total
