"""Property: whatever mix of book/cancel/extend/expire/confirm, no two active bookings overlap.

A simple model predicts whether each booking on a chosen space must succeed; the database must
agree, and the stored active bookings must never overlap.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import func, select

from cloud_api import bookings as svc
from cloud_api.db import make_engine, make_sessionmaker
from cloud_api.errors import Conflict
from cloud_api.migrate import upgrade
from cloud_api.models import Booking, Payment, User
from devservices import seed_world
from tests.support.cloud import T0, allow_unpaid_holds
from tests.support.payments import pay_booking

SLOT = timedelta(minutes=30)
_TEMPLATE: dict[str, object] = {}


def _template() -> tuple[Path, list[int], int]:
    if not _TEMPLATE:
        path = Path(tempfile.mkdtemp(prefix="pg-prop-")) / "template.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        world = seed_world(url, {"car": 2})
        allow_unpaid_holds(url, world.lot_id)  # the model books many times as one customer
        _TEMPLATE.update(path=path, spaces=world.space_ids[:2], lot=world.lot_id)
    return _TEMPLATE["path"], _TEMPLATE["spaces"], _TEMPLATE["lot"]  # type: ignore[return-value]


class Bookings(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        template, self.spaces, self.lot = _template()
        self.dir = Path(tempfile.mkdtemp(prefix="pg-prop-"))
        shutil.copy(template, self.dir / "db.sqlite")
        self.engine = make_engine(f"sqlite:///{self.dir / 'db.sqlite'}")
        self.session = make_sessionmaker(self.engine)()
        self.user = self.session.scalars(select(User).order_by(User.id)).first()
        self.now = T0
        self.model: dict[str, list] = {}  # id -> [space, start, end, status, hold_expires]

    def teardown(self) -> None:
        self.session.close()
        self.engine.dispose()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _blocks(self, row: list) -> bool:  # type: ignore[type-arg]
        return row[3] == "confirmed" or (row[3] == "pending" and row[4] > self.now)

    def _free(self, space: int, start, end, skip: str | None = None) -> bool:  # type: ignore[no-untyped-def]
        return not any(
            bid != skip and r[0] == space and self._blocks(r) and r[1] < end and start < r[2]
            for bid, r in self.model.items()
        )

    @rule(space=st.integers(0, 1), at=st.integers(0, 12), length=st.integers(1, 6))
    def book(self, space: int, at: int, length: int) -> None:
        sid = self.spaces[space]
        start, end = self.now + at * SLOT, self.now + (at + length) * SLOT
        expected = self._free(sid, start, end)
        req = svc.BookingRequest(self.lot, "P1", "car", start, end, space_id=sid)
        try:
            b = svc.create_booking(self.session, self.user, req, self.now)  # type: ignore[arg-type]
            self.session.commit()
        except Conflict:
            self.session.rollback()
            assert not expected, "model says free, database refused"
            return
        assert expected, "model says taken, database accepted"
        for r in self.model.values():  # lapsed holds on that space were expired on the way
            if (
                r[0] == sid
                and r[3] == "pending"
                and r[4] <= self.now
                and r[1] < end
                and start < r[2]
            ):
                r[3] = "expired"
        self.model[b.id] = [sid, start, end, b.status, b.hold_expires_at]

    def _pick(self, data: st.DataObject) -> str:
        # insertion order, not sorted(): ids are random, so their order differs run to run
        return data.draw(st.sampled_from(list(self.model)))

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def confirm(self, data: st.DataObject) -> None:
        bid = self._pick(data)
        charge = self.session.scalars(
            select(Payment).where(Payment.booking_id == bid, Payment.kind == "charge")
        ).first()
        if charge is None or charge.captured_cents:  # free, or paid already: nothing to capture
            return
        outcome = pay_booking(self.session, bid, self.now)  # captured, as the webhook does
        self.session.commit()
        if outcome == "confirmed":
            assert self.model[bid][3] in ("pending", "confirmed")
            self.model[bid][3] = "confirmed"
        else:  # released or expired meanwhile: the money goes back, the booking stays gone
            assert outcome == "refund_late_payment", outcome
            assert self.model[bid][3] not in ("pending", "confirmed")

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        bid = self._pick(data)
        booking = self.session.get(Booking, bid)
        try:
            svc.cancel_booking(self.session, booking, now=self.now)  # type: ignore[arg-type]
            self.session.commit()
            self.model[bid][3] = "cancelled"
        except Conflict:
            self.session.rollback()

    @precondition(lambda self: self.model)
    @rule(data=st.data(), by=st.integers(1, 6))
    def extend(self, data: st.DataObject, by: int) -> None:
        bid = self._pick(data)
        row = self.model[bid]
        new_end = row[2] + by * SLOT
        unpaid = self.session.scalar(  # an unpaid extension must be paid before another
            select(func.count())
            .select_from(Payment)
            .where(
                Payment.booking_id == bid,
                Payment.kind != "refund",
                Payment.status.in_(("requires_payment", "failed")),
            )
        )
        expected = row[3] == "confirmed" and not unpaid and self._free(row[0], row[2], new_end, bid)
        try:
            svc.extend_booking(
                self.session,
                self.session.get(Booking, bid),
                new_end,  # type: ignore[arg-type]
                now=self.now,
            )
            self.session.commit()
        except Conflict:
            self.session.rollback()
            assert not expected
            return
        assert expected
        row[2] = new_end

    @rule(minutes=st.sampled_from([5, 16, 45]))
    def tick_and_expire(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)
        for bid in svc.expire_holds(self.session, self.now):
            self.model[bid][3] = "expired"
        self.session.commit()

    @invariant()
    def no_overlapping_active_bookings(self) -> None:
        rows = self.session.scalars(
            select(Booking).where(Booking.status.in_(["pending", "confirmed"]))
        ).all()
        for a in rows:
            for b in rows:
                if a.id < b.id and a.space_id == b.space_id:
                    assert not (a.start_time < b.end_time and b.start_time < a.end_time), (
                        a.id,
                        b.id,
                    )
        for b in rows:
            assert self.model[b.id][3] == b.status


TestBookings = Bookings.TestCase
TestBookings.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
