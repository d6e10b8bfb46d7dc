"""The one-round-trip booking on a real PostgreSQL writes what the ORM path writes.

Each scenario is booked twice on twin lots of one migrated database: once by the ORM path
(``cloud_api.bookings.create_booking``), once by ``parkgate_create_booking`` through
``cloud_api.booking_pg``. Every row both paths write (booking, payment, outbox message, event log,
change feed) must match once ids are replaced by their role; refusals must be the same errors.
Both paths price with ``price_stay`` on the lot's policy, read by ``PgBooker.policy`` in one
query and by ``cloud_api.policies.current_policy`` through the ORM: the two must agree.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any

import pytest
from asyncpg import UniqueViolationError
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from cloud_api import bookings as svc
from cloud_api.booking_pg import Created, PgBooker
from cloud_api.changes import INFO_BOOKING_COUNTS, INFO_CHANGED_LOTS, INFO_RELAY_WAKE
from cloud_api.db import make_engine, make_sessionmaker
from cloud_api.errors import BookingError
from cloud_api.migrate import upgrade
from cloud_api.models import (
    Booking,
    EventLog,
    IdempotencyRecord,
    Lot,
    LotChange,
    OutboxMessage,
    Payment,
    Role,
    User,
)
from cloud_api.policies import current_policy, set_policy
from cloud_api.seed import add_lot, add_user
from parkgate_protocol import TariffBand, VehicleTariff

pytestmark = pytest.mark.integration

NOW = datetime(2030, 3, 1, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)
PRICES = {"car": (250, 1800), "ev": (0, 0), "van": (400, 3000)}


@pytest.fixture(scope="module")
def pg_url(postgres_server: Any) -> str:
    postgres_server.create_database("booking_pg")
    url: str = postgres_server.url("booking_pg")
    upgrade(url)
    return url


@pytest.fixture(scope="module")
def pg_sessions(pg_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(pg_url)
    yield make_sessionmaker(engine)
    engine.dispose()


class Fast:
    """``PgBooker`` driven from synchronous tests (one event loop and pool per call)."""

    def __init__(self, url: str, sessions: sessionmaker[Session]) -> None:
        self.url, self.sessions = url, sessions

    def book(
        self,
        user: User,
        req: svc.BookingRequest,
        now: datetime = NOW,
        idempotency: tuple[str, str] | None = None,
    ) -> Created | None:
        async def run() -> Created | None:
            booker = PgBooker(self.url, self.sessions, 2)
            await booker.open()
            try:
                return await booker.book(user.id, req, now, idempotency)
            finally:
                await booker.close()

        return asyncio.run(run())


@pytest.fixture(scope="module")
def fast(pg_url: str, pg_sessions: sessionmaker[Session]) -> Fast:
    return Fast(pg_url, pg_sessions)


@pytest.fixture
def twins(pg_sessions: sessionmaker[Session]) -> tuple[Lot, Lot, User]:
    """Two identical lots (one per path) and a customer."""
    with pg_sessions() as s:
        lots = [
            add_lot(s, f"Twin {k}", {"car": 2, "ev": 1, "van": 1}, prices=PRICES, hold_minutes=20)
            for k in "AB"
        ]
        user = add_user(s, f"c{lots[0].id}@example.test", Role.CUSTOMER).user
        s.commit()
        s.expunge_all()
    return lots[0], lots[1], user


def _space(s: Session, lot: Lot, n: int) -> int:
    return _space_ids(s, lot)[n]


def _request(
    lot: Lot, s: Session, *, start: datetime, end: datetime, **kw: Any
) -> svc.BookingRequest:
    space = kw.pop("space", None)
    return svc.BookingRequest(
        lot.id,
        kw.pop("plate", "ab-123 c"),
        kw.pop("vt", "car"),
        start,
        end,
        space_id=None if space is None else _space(s, lot, space),
    )


def _orm(s: Session, user: User, req: svc.BookingRequest) -> str:
    booking = svc.create_booking(s, user, req, NOW)
    s.commit()
    return booking.id


def _fast(fast: Fast) -> Any:
    """A booking function like ``_orm`` that goes through ``fast``."""

    def book(_s: Session, user: User, req: svc.BookingRequest) -> str:
        created = fast.book(user, req)
        assert created is not None
        return created.booking.id

    return book


def _written(s: Session, lot: Lot, booking_id: str) -> dict[str, Any]:
    """What a booking wrote, with ids replaced by their role so twins compare equal."""
    names = {booking_id: "<booking>", lot.id: "<lot>"}
    spaces = _space_ids(s, lot)

    def norm(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items() if k not in ("payment_id",)}
        if isinstance(value, str):
            return value.replace(booking_id, "<booking>")
        return names.get(value, value) if isinstance(value, int | str) else value

    b = s.get(Booking, booking_id)
    assert b is not None
    booking = {
        c: norm(getattr(b, c))
        for c in Booking.__table__.columns.keys()  # noqa: SIM118
        if c not in ("id", "user_id")
    }
    booking["space_id"] = spaces.index(b.space_id)
    booking["policy_version"] = b.policy_version  # a number, not an id to replace
    payments = [
        {
            "amount": p.amount_cents,
            "currency": p.currency,
            "status": p.status,
            "provider": p.provider,
            "ref": p.provider_ref,
            "kind": p.kind,
            "key": norm(p.idempotency_key),
        }
        for p in s.scalars(select(Payment).where(Payment.booking_id == booking_id))
    ]
    payment_ids = set(s.scalars(select(Payment.id).where(Payment.booking_id == booking_id)))
    outbox = [
        (
            m.kind,
            norm(m.payload),
            m.attempts,
            m.dead,
            m.sent_at,
            m.payload["payment_id"] in payment_ids,
        )
        for m in s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        if m.payload.get("booking_id") == booking_id
    ]
    events = [
        (e.kind, norm(e.lot_id), e.payload, e.created_at)
        for e in s.scalars(select(EventLog).where(EventLog.booking_id == booking_id))
    ]
    changes = [
        (c.seq, c.kind, norm(c.payload), c.created_at, c.relayed_at)
        for c in s.scalars(
            select(LotChange).where(LotChange.lot_id == lot.id).order_by(LotChange.seq)
        )
    ]
    return {
        "booking": booking,
        "payments": payments,
        "outbox": outbox,
        "events": events,
        "changes": changes,
    }


def _space_ids(s: Session, lot: Lot) -> list[int]:
    return list(
        s.scalars(text("SELECT id FROM spaces WHERE lot_id = :l ORDER BY id"), {"l": lot.id})
    )


SCENARIOS: dict[str, dict[str, Any]] = {
    "priced, first free space": {"start": NOW + H, "end": NOW + 3 * H},
    "free of charge (ev)": {"start": NOW + H, "end": NOW + 3 * H, "vt": "ev"},
    "chosen space": {"start": NOW + 2 * H, "end": NOW + 30 * H, "space": 1},
    "offset times, daily cap": {
        "start": datetime(2030, 3, 2, 9, 30, tzinfo=timezone(timedelta(hours=2))),
        "end": datetime(2030, 3, 4, 10, 45, tzinfo=timezone(timedelta(hours=2))),
        "vt": "van",
        "plate": "m xy 42",
    },
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_fast_path_writes_what_the_orm_path_writes(
    pg_sessions: sessionmaker[Session], fast: Fast, twins: tuple[Lot, Lot, User], scenario: str
) -> None:
    lot_a, lot_b, user = twins
    with pg_sessions() as s:
        by_orm = _orm(s, user, _request(lot_a, s, **SCENARIOS[scenario]))
        by_fast = _fast(fast)(s, user, _request(lot_b, s, **SCENARIOS[scenario]))
        s.rollback()  # see the rows the other connection committed
        orm, by_sql = _written(s, lot_a, by_orm), _written(s, lot_b, by_fast)
    assert by_sql == orm
    assert by_sql["changes"], "the change feed got its row"


def test_fast_path_answers_with_the_stored_booking(
    pg_sessions: sessionmaker[Session], fast: Fast, twins: tuple[Lot, Lot, User]
) -> None:
    _, lot, user = twins
    with pg_sessions() as s:
        created = fast.book(user, _request(lot, s, start=NOW + H, end=NOW + 4 * H))
        assert created is not None
        stored = s.get(Booking, created.booking.id)
        assert stored is not None
        for column in Booking.__table__.columns.keys():  # noqa: SIM118
            assert getattr(created.booking, column) == getattr(stored, column), column
        assert created.space_label == "A1"
        assert created.payment_id == s.scalar(
            select(Payment.id).where(Payment.booking_id == stored.id)
        )


REFUSALS: dict[str, tuple[dict[str, Any], str]] = {
    "unknown lot": ({"lot": 10**6}, "unknown_lot"),
    "no price for type": ({"vt": "motorcycle"}, "no_price"),
    "space of another lot": ({"foreign_space": True}, "unknown_space"),
    "incompatible space": ({"space": 2}, "space_incompatible"),
    "chosen space overlaps": ({"space": 0, "taken": 0}, "space_overlaps"),
    "lot full": ({"taken": None}, "no_space_free"),
    "invalid plate": ({"plate": "!"}, "invalid_plate"),
    "end before start": ({"end": NOW + H}, "end_before_start"),
}


def _refusal(
    s: Session, lot: Lot, other: Lot, user: User, case: dict[str, Any], book: Any
) -> BookingError:
    start, end = NOW + H, case.get("end", NOW + 3 * H)
    if "taken" in case:  # fill the space (or every car space) first, by the ORM path
        spaces = [case["taken"]] if case["taken"] is not None else [0, 1]
        for n in spaces:
            _orm(s, user, _request(lot, s, start=start, end=NOW + 3 * H, space=n))
    req = _request(
        lot,
        s,
        start=start,
        end=end,
        vt=case.get("vt", "car"),
        plate=case.get("plate", "AB1"),
        space=case.get("space"),
    )
    if "lot" in case:
        req = svc.BookingRequest(case["lot"], req.plate, req.vehicle_type, req.start, req.end)
    if case.get("foreign_space"):
        req = svc.BookingRequest(lot.id, req.plate, "car", start, end, _space(s, other, 0))
    with pytest.raises(BookingError) as err:
        book(s, user, req)
    s.rollback()
    return err.value


@pytest.mark.parametrize("case", REFUSALS)
def test_refusals_match(
    pg_sessions: sessionmaker[Session], fast: Fast, twins: tuple[Lot, Lot, User], case: str
) -> None:
    lot_a, lot_b, user = twins
    spec, reason = REFUSALS[case]
    with pg_sessions() as s:
        orm = _refusal(s, lot_a, lot_b, user, spec, _orm)
        by_sql = _refusal(s, lot_b, lot_a, user, spec, _fast(fast))
        written = s.scalar(select(Booking.id).where(Booking.plate == "AB1"))
    ids = re.compile(r"\d+")  # lot and space ids differ between the twins
    assert (type(by_sql), by_sql.reason, ids.sub("#", by_sql.detail)) == (
        type(orm),
        orm.reason,
        ids.sub("#", orm.detail),
    )
    assert by_sql.reason == reason
    assert written is None, "a refusal writes nothing"


def test_lapsed_hold_hands_over_to_the_orm_path(
    pg_sessions: sessionmaker[Session], fast: Fast, twins: tuple[Lot, Lot, User]
) -> None:
    """A hold past its time still holds the EXCLUDE constraint until expired: the function says
    so, and the ORM path expires it (with its change-feed row) and books."""
    _, lot, user = twins
    with pg_sessions() as s:
        first = _orm(s, user, _request(lot, s, start=NOW + H, end=NOW + 3 * H, space=0))
        later = NOW + timedelta(minutes=21)
        req = _request(lot, s, start=NOW + 2 * H, end=NOW + 4 * H, space=0)
        s.rollback()
        assert fast.book(user, req, later) is None
        booking = svc.create_booking(s, user, req, later)
        s.commit()
        assert s.get(Booking, first).status == "expired"  # type: ignore[union-attr]
        assert booking.space_id == _space(s, lot, 0)


def test_after_commit_notes(
    pg_url: str, pg_sessions: sessionmaker[Session], twins: tuple[Lot, Lot, User]
) -> None:
    """Rows written by SQL still bump the availability cache, wake the relay and count: the
    booker commits an empty session carrying the notes the ORM's flush would have made."""
    _, lot, user = twins
    sessions = make_sessionmaker(make_engine(pg_url))
    seen: list[dict[str, Any]] = []
    event.listen(sessions, "after_commit", lambda session: seen.append(dict(session.info)))
    with pg_sessions() as s:
        req = _request(lot, s, start=NOW + H, end=NOW + 2 * H)
    assert Fast(pg_url, sessions).book(user, req) is not None
    assert seen == [
        {INFO_CHANGED_LOTS: {lot.id}, INFO_RELAY_WAKE: True, INFO_BOOKING_COUNTS: [1, 0]}
    ]


def test_fast_path_reads_the_policy_the_orm_reads(
    pg_sessions: sessionmaker[Session], fast: Fast, twins: tuple[Lot, Lot, User]
) -> None:
    """Derived from the lot's columns first, then the stored version once one is set."""
    _, lot, user = twins

    async def read() -> Any:
        booker = PgBooker(fast.url, fast.sessions, 1)
        await booker.open()
        try:
            return await booker.policy(lot.id)
        finally:
            await booker.close()

    with pg_sessions() as s:
        assert asyncio.run(read()) == current_policy(s, lot.id)
        policy = current_policy(s, lot.id)
        night = TariffBand(name="night", start=time(22), end=time(6), rate_cents=50)
        car = VehicleTariff(block_minutes=30, rate_cents=150, bands=(night,))
        tariff = policy.tariff.model_copy(update={"vehicles": {"car": car}})
        fields = policy.model_copy(update={"tariff": tariff}).to_wire()
        set_policy(s, lot.id, fields, actor=user, now=NOW)
        s.commit()
        stored = current_policy(s, lot.id)
    assert stored.version == policy.version + 1
    assert asyncio.run(read()) == stored
    with pg_sessions() as s:
        created = fast.book(user, _request(lot, s, start=NOW + H, end=NOW + 3 * H))
    assert created is not None
    assert (created.booking.price_cents, created.booking.policy_version) == (600, stored.version)


def test_idempotency_key_is_claimed_once(
    pg_sessions: sessionmaker[Session], fast: Fast, twins: tuple[Lot, Lot, User]
) -> None:
    """The key is claimed in the booking's own statement: a second claim undoes its booking."""
    _, lot, user = twins
    key = (f"key-{lot.id}", "0" * 64)
    with pg_sessions() as s:
        first = _request(lot, s, start=NOW + H, end=NOW + 2 * H)
        created = fast.book(user, first, NOW, key)
        assert created is not None
        with pytest.raises(UniqueViolationError):
            fast.book(user, first, NOW, key)
        record = s.scalars(select(IdempotencyRecord).where(IdempotencyRecord.key == key[0])).one()
        assert record.response == {"booking_id": created.booking.id}
        count = select(func.count()).select_from(Booking).where(Booking.lot_id == lot.id)
        assert s.scalar(count) == 1
