"""Property: the cloud prices bookings and overstays exactly as ``price_stay`` prices them on the
policy that went over the wire to the gate (random tariffs, random stays).

Each example stores a random tariff as the lot's policy (``set_policy``), reads it back from the
change-feed row the gate receives (``change_from_feed`` → ``parse_policy``), books a random
window, and exits late: the booking's price and the overstay owed must be the wire policy's.
Also: the policy version in force reaches the cloud with the gate's status heartbeat.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud_api import bookings as svc
from cloud_api.changes import change_from_feed
from cloud_api.db import make_engine, make_sessionmaker
from cloud_api.lot_sync import LotStatus, store_message
from cloud_api.migrate import upgrade
from cloud_api.models import LotChange, User
from cloud_api.policies import current_policy, set_policy
from cloud_api.visits import record_arrival, record_exit
from devservices import World, seed_world
from parkgate_protocol import (
    Status,
    Tariff,
    encode,
    parse_policy,
    price_stay,
    topic,
)
from tests.support.tariffs import tariffs as random_tariffs

NOW = datetime(2030, 6, 1, 8, 0, tzinfo=UTC)

tariffs = random_tariffs("ev")


@pytest.fixture(scope="module")
def sessions() -> Iterator[sessionmaker[Session]]:
    folder = Path(tempfile.mkdtemp(prefix="policy-pricing-"))
    url = f"sqlite:///{folder / 'cloud.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield make_sessionmaker(engine)
    engine.dispose()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def world(sessions: sessionmaker[Session]) -> World:
    return seed_world(str(sessions.kw["bind"].url), {"car": 1, "ev": 1})


def _wire_policy(session: Session, lot_id: int) -> Tariff:
    row = session.scalars(
        select(LotChange).where(LotChange.lot_id == lot_id).order_by(LotChange.seq.desc())
    ).first()
    assert row is not None and row.kind == "policy"
    change = change_from_feed(lot_id, row.seq, row.kind, dict(row.payload), row.created_at)
    assert change.policy is not None
    return parse_policy(change.policy).tariff


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    tariff=tariffs,
    vehicle=st.sampled_from(["car", "ev"]),
    start_in=st.timedeltas(timedelta(minutes=1), timedelta(days=20)),
    length=st.timedeltas(timedelta(minutes=1), timedelta(days=10)),
    late_by=st.timedeltas(timedelta(0), timedelta(days=3)),
)
def test_cloud_prices_equal_price_stay_on_the_wire_policy(
    sessions: sessionmaker[Session],
    world: World,
    tariff: Tariff,
    vehicle: str,
    start_in: timedelta,
    length: timedelta,
    late_by: timedelta,
) -> None:
    with sessions() as s:
        policy = current_policy(s, world.lot_id)
        user = s.scalars(select(User).where(User.email == "alice@example.test")).one()
        fields = {**policy.to_wire(), "tariff": tariff}
        set_policy(s, world.lot_id, fields, actor=user, now=NOW)
        s.commit()
        wire = _wire_policy(s, world.lot_id)
        start, end = NOW + start_in, NOW + start_in + length
        req = svc.BookingRequest(world.lot_id, "AB123", vehicle, start, end)
        booking = svc.create_booking(s, user, req, NOW)
        assert booking.price_cents == price_stay(wire, start, end, vehicle)
        assert booking.policy_version == policy.version + 1
        booking.status = "confirmed"  # as if paid
        record_arrival(s, booking, at=start, now=start)
        exit_at = end + late_by
        outcome = record_exit(s, booking, at=exit_at, now=exit_at)
        grace = timedelta(minutes=current_policy(s, world.lot_id).overstay_grace_minutes)
        expected = price_stay(wire, end, exit_at, vehicle) if late_by > grace else 0
        assert outcome.overstay_cents == expected
        s.rollback()  # the booking goes; the policy version stays (committed)


def test_the_gate_reports_the_policy_in_force(
    sessions: sessionmaker[Session], world: World
) -> None:
    lot = str(world.lot_id)
    beat = Status(
        lot_id=lot, state="online", at=NOW, policy_version=3, policy_problem="invalid: tariff"
    )
    will = Status(lot_id=lot, state="offline")
    with sessions() as s:
        assert store_message(s, topic(lot, "status"), encode(beat), NOW) == "status"
        s.commit()
        row = s.get(LotStatus, world.lot_id)
        assert row is not None
        assert (row.policy_version, row.policy_problem) == (3, "invalid: tariff")
        assert store_message(s, topic(lot, "status"), encode(will), NOW) == "status"
        s.commit()
        s.refresh(row)
        assert (row.state, row.policy_version) == ("offline", 3)  # the will says nothing of it
