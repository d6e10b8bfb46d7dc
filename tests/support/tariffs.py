"""Hypothesis strategies for random tariffs: the cloud's and the gate's pricing tests draw from
the same ones, so both sides are checked against the same space of tariffs."""

from __future__ import annotations

from datetime import time

from hypothesis import strategies as st

from parkgate_protocol import Tariff, TariffBand, VehicleTariff

__all__ = ["bands", "tariffs", "vehicle_tariffs"]

bands = st.builds(
    TariffBand,
    name=st.just("band"),
    days=st.frozensets(st.integers(0, 6), min_size=1),
    start=st.builds(time, st.integers(0, 23), st.sampled_from([0, 30])),
    end=st.builds(time, st.integers(0, 23), st.sampled_from([0, 15])),
    rate_cents=st.integers(0, 2000),
)
vehicle_tariffs = st.builds(
    VehicleTariff,
    block_minutes=st.sampled_from([1, 15, 30, 60, 90, 1440]),
    rate_cents=st.integers(0, 5000),
    free_minutes=st.integers(0, 120),
    daily_max_cents=st.none() | st.integers(0, 50_000),
    bands=st.lists(bands, max_size=3).map(tuple),
)


def tariffs(*vehicles: str) -> st.SearchStrategy[Tariff]:
    """Random tariffs in a few real time zones, with these vehicle types (``car`` always)."""
    names = dict.fromkeys(("car", *vehicles))
    return st.builds(
        Tariff,
        timezone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]),
        vehicles=st.fixed_dictionaries({name: vehicle_tariffs for name in names}),
    )
