"""``POST /bookings`` on PostgreSQL: one statement, on the event loop (migration bk01).

The ORM path in ``cloud_api.bookings`` takes about sixteen round trips and most of a booking's
server CPU (unit of work, savepoint, five flushes, a threadpool hop). Here Python validates the
request and prices it on the lot's policy (one query, ``price_stay``), then
``parkgate_create_booking`` does the whole check-and-insert in the database, on a
asyncpg connection: no thread, no ORM (psycopg's async path cost ~0.6 ms of Python per round trip
here, asyncpg's protocol is compiled). The ``EXCLUDE`` constraint still decides a race.
The rows written are the ORM path's rows (``tests/cloud_api/test_booking_pg.py`` compares them).

The statement is a transaction of its own (autocommit). The function locks the lot's row first:
that row orders the lot's change feed, and taking it first also keeps concurrent bookings from
piling foreign-key share locks on it (multixacts: 64 clients on one lot ran at 88 bookings/s).
Committed inside the statement, the lock is never held across a round trip to a busy Python
process. Before it, a priced booking locks the customer's ``users`` row and counts their unpaid
holds at the lot (``LotPolicy.max_unpaid_holds``, migration lg01): concurrent requests of one
customer cannot all pass the limit together. After the commit, the session's after-commit
hooks run as if the ORM had written the rows (availability cache, MQTT relay, metrics; see
``cloud_api.changes.note_sql_change``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from cloud_api.bookings import (
    BookingRequest,
    check_unpaid_holds,
    new_booking_id,
    normalise_plate,
    price_booking,
    validate_window,
)
from cloud_api.changes import note_sql_change
from cloud_api.errors import Conflict, InvalidRequest
from cloud_api.models import Booking, utcnow
from cloud_api.policies import POLICY_OWNED_COLUMNS, derive_policy
from parkgate_protocol import LotPolicy

__all__ = ["Created", "PgBooker", "libpq_url"]

_CALL = (
    "SELECT outcome, space_id, space_label, status, price_cents, currency, hold_expires_at, "
    "payment_id, detail FROM parkgate_create_booking($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
    "$11, $12, $13, $14, $15, $16, $17)"
)
# The lot's policy in one round trip: the newest stored version, else what derive_policy needs.
_POLICY = (
    "SELECT (SELECT p.body FROM lot_policies p WHERE p.lot_id = l.id ORDER BY p.version DESC "
    "LIMIT 1) AS body, "
    + ", ".join(f"l.{name}" for name in (*POLICY_OWNED_COLUMNS, "currency", "timezone"))
    + ", (SELECT json_agg(json_build_array(lp.vehicle_type, lp.hourly_cents, "
    "lp.daily_cap_cents)) FROM lot_prices lp WHERE lp.lot_id = l.id) AS prices "
    "FROM lots l WHERE l.id = $1"
)
_CLAIMED = "SELECT 1 FROM idempotency_keys WHERE user_id = $1 AND key = $2"
_STORE = "UPDATE idempotency_keys SET response = $3::json WHERE user_id = $1 AND key = $2"


def libpq_url(database_url: str) -> str:
    """A SQLAlchemy ``postgresql+psycopg://`` URL as a plain ``postgresql://`` URL."""
    url = make_url(database_url)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass(frozen=True, slots=True)
class Created:
    """The new booking (a detached ``Booking`` with the inserted values) and what the answer
    needs besides: its space label and the id of the payment awaiting the customer."""

    booking: Booking
    space_label: str | None
    payment_id: int | None


class PgBooker:
    """Books through ``parkgate_create_booking`` on a pool of async autocommit connections."""

    def __init__(
        self,
        database_url: str,
        sessions: sessionmaker[Session],
        size: int,
        *,
        hooks_do_io: bool = False,
    ) -> None:
        """``hooks_do_io``: the after-commit hooks talk to a server (the Redis availability
        cache), so they run in the threadpool instead of stalling the event loop."""
        self._url, self._size, self._sessions = libpq_url(database_url), size, sessions
        self._hooks_do_io = hooks_do_io
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self._url, min_size=1, max_size=self._size, reset=_keep_session
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("PgBooker.open() first")
        return self._pool

    async def book(
        self,
        user_id: int,
        req: BookingRequest,
        now: datetime,
        idempotency: tuple[str, str] | None = None,
    ) -> Created | None:
        """Book in one committed statement; ``Conflict``/``InvalidRequest`` as the ORM path
        raises them; ``None``: a lapsed hold is in the way, take the ORM path (which expires it).

        ``idempotency`` = (key, request hash) claims the key in the same statement with the
        placeholder answer ``{"booking_id": ...}``; ``asyncpg.UniqueViolationError`` if another
        request holds it (nothing is then written). ``store_answer`` replaces the placeholder.
        """
        validate_window(req.start, req.end, now)
        plate = normalise_plate(req.plate)
        policy = await self.policy(req.lot_id)
        price = price_booking(policy, req.vehicle_type, req.start, req.end)
        booking_id = new_booking_id()
        key, digest = idempotency or (None, None)
        row = await self.pool.fetchrow(
            _CALL,
            booking_id,
            user_id,
            req.lot_id,
            req.space_id,
            plate,
            req.vehicle_type,
            req.start,
            req.end,
            now,
            utcnow(),
            req.start.isoformat(),
            req.end.isoformat(),
            key,
            digest,
            price,
            policy.version,
            policy.max_unpaid_holds,  # checked inside, under the customer's row lock (lg01)
        )
        assert row is not None
        if row["outcome"] == "stale_hold":
            return None
        if row["outcome"] == "too_many_unpaid_holds":
            check_unpaid_holds(int(row["detail"]), policy.max_unpaid_holds)
        if row["outcome"] != "created":
            raise _refusal(row["outcome"], req, row["detail"])
        if self._hooks_do_io:  # before the answer: a later read must see the cache bumped
            await run_in_threadpool(self._committed, req.lot_id)
        else:
            self._committed(req.lot_id)
        hold = row["hold_expires_at"]
        booking = Booking(
            id=booking_id,
            user_id=user_id,
            lot_id=req.lot_id,
            space_id=row["space_id"],
            plate=plate,
            vehicle_type=req.vehicle_type,
            start_time=req.start,
            end_time=req.end,
            status=row["status"],
            hold_expires_at=hold.astimezone(UTC) if hold else None,
            price_cents=row["price_cents"],
            currency=row["currency"],
            amount_owed_cents=0,
            refunded_cents=0,
            arrived_at=None,
            exited_at=None,
            created_at=now,
            updated_at=now,
            policy_version=policy.version,
        )
        return Created(booking, row["space_label"], row["payment_id"])

    async def policy(self, lot_id: int) -> LotPolicy:
        """The lot's policy in force (``cloud_api.policies.current_policy`` in one query)."""
        row = await self.pool.fetchrow(_POLICY, lot_id)
        if row is None:
            raise InvalidRequest("unknown_lot", f"parking lot {lot_id} does not exist")
        if row["body"] is not None:
            return LotPolicy.model_validate(json.loads(row["body"]))
        prices = json.loads(row["prices"]) if row["prices"] else []
        return derive_policy(dict(row), [(v, h, c) for v, h, c in prices])

    async def key_claimed(self, user_id: int, key: str) -> bool:
        """Whether this user's ``Idempotency-Key`` was already used (its answer is replayed)."""
        return await self.pool.fetchval(_CLAIMED, user_id, key) is not None

    async def store_answer(self, user_id: int, key: str, answer_json: str) -> None:
        """Replace a claimed key's placeholder with the answer (JSON text) to replay."""
        await self.pool.execute(_STORE, user_id, key, answer_json)

    def _committed(self, lot_id: int) -> None:
        """Run the after-commit hooks for a change-feed row written by SQL. The session does no
        IO: committing its empty transaction fires the hooks."""
        with self._sessions() as session:
            note_sql_change(session, lot_id, bookings_created=1)
            session.commit()


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Released connections need no reset (a round trip per booking, 7% of its server CPU):
    these statements set nothing, listen to nothing and take no advisory lock."""


def _refusal(outcome: str, req: BookingRequest, detail: str | None) -> Exception:
    """The ORM path's error for each refusal the function reports."""
    if outcome == "unknown_lot":
        return InvalidRequest("unknown_lot", f"parking lot {req.lot_id} does not exist")
    if outcome == "unknown_space":
        return InvalidRequest("unknown_space", f"space {req.space_id} is not in lot {req.lot_id}")
    if outcome == "space_incompatible":
        return InvalidRequest("space_incompatible", f"space is for {detail}")
    if outcome == "space_overlaps":
        return Conflict("space_overlaps", "the chosen space is booked for an overlapping window")
    if outcome == "no_space_free":
        return Conflict("no_space_free", "no compatible space is free for that window")
    raise RuntimeError(f"parkgate_create_booking answered {outcome!r}")
