"""A ledger that adds up: a Hypothesis state machine drives random stays through the real cloud
(bookings, extensions, plate changes, cancellations, arrivals early or late, exits early or
late, held exits, drive-ups, pay by plate) with every payment made on the local provider and
applied by its signed webhook through the app (replayed, repeated, out of order, declined, paid
twice), and checks after every step, from the provider's own books:

- what the provider captured less what it refunded, plus what the cloud still says is owed, is
  what the pricing functions say each stay costs (a booking: its price less the early-exit
  credit plus the overstay; a drive-up: ``price_stay`` to its exit or to the moment it was paid
  through; cancelled, expired or unpaid bookings: nothing);
- nothing is owed on a closed stay once it was settled, and nothing stays payable there;
- no refund without a capture, and never more refunded than captured.

CI runs ``LEDGER_EXAMPLES`` (default 25) examples of up to ``LEDGER_STEPS`` (default 40) steps
(well under a minute); ``LEDGER_EXAMPLES=2000 pytest tests/cloud_api/test_ledger.py`` runs
thousands of stays locally. The same machine runs on PostgreSQL (integration, a database per
example: ``LEDGER_PG_EXAMPLES``, default 10, about 40 s).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_api import bookings as svc
from cloud_api.app import create_app
from cloud_api.errors import Conflict, InvalidRequest, TooMany
from cloud_api.lot_sync import store_message
from cloud_api.migrate import upgrade
from cloud_api.models import Booking, Lot, Payment, PaymentKind, User
from cloud_api.outbox import OutboxWorker
from cloud_api.payments import InProcessTransport, LocalProvider
from cloud_api.payments.handlers import payment_handlers
from cloud_api.policies import current_policy, set_policy
from cloud_api.pricing import early_exit_credit, overstay_charge
from cloud_api.settings import Settings
from cloud_api.stays import (
    Stay,
    get_stay,
    owed_now,
    start_stay_payment,
)
from devservices import PostgresInstance, seed_world
from parkgate_protocol import GateEvent, GateEventKind, LotPolicy, encode, price_stay, topic
from tests.support.cloud import T0, Clock

SECRET = "whsec_ledger"
SLOT = timedelta(minutes=30)
_TEMPLATE: dict[str, Any] = {}


_PG: dict[str, Any] = {}  # "server": the PostgresInstance while the PostgreSQL run is on


def _seed(url: str) -> int:
    """Migrate and seed ``url``; its first lot admits drive-ups. Returns that lot's id."""
    upgrade(url)
    world = seed_world(url, {"car": 4})
    from cloud_api.db import make_engine, make_sessionmaker

    engine = make_engine(url)
    with make_sessionmaker(engine).begin() as s:
        fields = {**current_policy(s, world.lot_id).to_wire(), "drive_up": True}
        fields.update(drive_up_spaces=10, max_unpaid_holds=100)
        set_policy(s, world.lot_id, fields, actor=None, now=T0)
    engine.dispose()
    return world.lot_id


def _template() -> tuple[Path, int]:
    """A migrated, seeded SQLite database (copied per example)."""
    if not _TEMPLATE:
        path = Path(tempfile.mkdtemp(prefix="pg-ledger-")) / "template.db"
        _TEMPLATE.update(path=path, lot=_seed(f"sqlite:///{path}"))
    return _TEMPLATE["path"], _TEMPLATE["lot"]


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(_PG["server"].dsn("postgres"), autocommit=True) as conn:
        conn.execute(sql)


def _pg_database() -> tuple[str, str, int]:
    """A fresh PostgreSQL database per example, copied from a migrated, seeded template
    (``CREATE DATABASE ... TEMPLATE``): (its name, its URL, the drive-up lot's id)."""
    server = _PG["server"]
    if "lot" not in _PG:
        server.create_database("ledger_template")
        _PG["lot"] = _seed(server.url("ledger_template"))
    name = f"ledger_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE ledger_template')
    return name, server.url(name), _PG["lot"]


def _note(what: str) -> None:
    """Hypothesis statistics (``--hypothesis-show-statistics``): which paths the runs took."""
    if currently_in_test_context():
        event(what)


@dataclass
class BookingModel:
    """What the test knows of a booking, independently of the cloud."""

    plate: str
    arrived: datetime | None = None
    exited: datetime | None = None
    priced_until: datetime | None = None  # the overstay is priced to here (pay by plate)


@dataclass
class DriveUpModel:
    plate: str
    entered: datetime
    exited: datetime | None = None
    priced_until: datetime | None = None


class Ledger(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="pg-ledger-"))
        self.pg_name: str | None = None
        if _PG:
            self.pg_name, url, self.lot = _pg_database()
        else:
            template, self.lot = _template()
            shutil.copy(template, self.dir / "db.sqlite")
            url = f"sqlite:///{self.dir / 'db.sqlite'}"
        self.clock = Clock(T0)
        self.provider = LocalProvider(webhook_secret=SECRET, webhook_url="/payments/webhook")
        app = create_app(
            Settings(
                database_url=url,
                hold_sweep_seconds=0,
                webhook_secret=SECRET,
                public_url="https://park.example",
            ),
            clock=self.clock,
            payment_provider=self.provider,
        )
        self.hooks = httpx.Client(transport=InProcessTransport(app), base_url="http://cloud.test")
        self.provider.use_http_client(self.hooks)
        self.sessions = app.state.sessions
        self.engine = app.state.engine
        self.worker = OutboxWorker(
            self.sessions, payment_handlers(self.provider, app.state.pay_links)
        )
        self.delivered: list[dict[str, Any]] = []
        deliver = self.provider.deliver

        def recording(event: Any) -> httpx.Response:
            self.delivered.append(dict(event))
            return deliver(event)

        self.provider.deliver = recording  # type: ignore[method-assign]
        with self.sessions() as s:
            self.users = list(s.scalars(select(User.id).where(User.role == "customer")))
            lot = s.get_one(Lot, self.lot)
            self.early_exit = (lot.early_exit_policy, lot.early_exit_fee_cents)
            self.policy: LotPolicy = current_policy(s, self.lot)
        self.bookings: dict[str, BookingModel] = {}
        self.drive_ups: dict[str, DriveUpModel] = {}
        self.plates = 0

    def teardown(self) -> None:
        self.hooks.close()
        self.engine.dispose()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.pg_name is not None:
            _pg_admin(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')

    # -- helpers -------------------------------------------------------------------------------
    def _drain(self) -> None:
        while self.worker.run_once():
            pass

    def _new_plate(self) -> str:
        self.plates += 1
        return f"LG{self.plates:04d}"

    def _event(self, kind: GateEventKind, **fields: Any) -> str:
        fields.setdefault("occurred_at", self.clock.now)
        event = GateEvent(event_id=uuid.uuid4().hex, lot_id=str(self.lot), kind=kind, **fields)
        with self.sessions.begin() as s:
            outcome = store_message(
                s, topic(str(self.lot), "events"), encode(event), self.clock.now
            )
        self._drain()
        return outcome

    def _booking(self, s: Session, booking_id: str) -> Booking:
        return s.get_one(Booking, booking_id)

    def _stay_of(self, s: Session, gate_stay_id: str) -> Stay | None:
        return s.scalars(select(Stay).where(Stay.gate_stay_id == gate_stay_id)).first()

    def _move_to(self, moment: datetime) -> None:
        if moment > self.clock.now:
            self.clock.now = moment
            with self.sessions.begin() as s:
                svc.expire_holds(s, self.clock.now)
            self._drain()

    def _priced_until(self, stay: Stay | None, exit_at: datetime) -> datetime:
        """What the exit prices to: the moment pay by plate covered, if the car left within
        the paid window after it (as the gate and ``cloud_api.stays`` do)."""
        if stay is None or stay.paid_through is None:
            return exit_at
        window = stay.paid_through + timedelta(minutes=self.policy.paid_exit_minutes)
        return min(exit_at, stay.paid_through) if exit_at <= window else exit_at

    # -- bookings ------------------------------------------------------------------------------
    @rule(
        user=st.integers(0, 1),
        at=st.integers(-1, 6),
        length=st.integers(1, 8),
        pay_now=st.sampled_from([True, True, False]),
    )
    def book(self, user: int, at: int, length: int, pay_now: bool) -> None:
        start = self.clock.now + at * SLOT + timedelta(minutes=1)
        req = svc.BookingRequest(self.lot, self._new_plate(), "car", start, start + length * SLOT)
        try:
            with self.sessions.begin() as s:
                booking = svc.create_booking(
                    s, s.get_one(User, self.users[user]), req, self.clock.now
                )
                self.bookings[booking.id] = BookingModel(booking.plate)
                payment_id = s.scalars(
                    select(Payment.id).where(Payment.booking_id == booking.id)
                ).first()
        except (Conflict, InvalidRequest, TooMany):
            return
        self._drain()
        if pay_now and payment_id is not None:
            self._complete(payment_id, succeed=True)

    def _complete(self, payment_id: int, *, succeed: bool) -> None:
        with self.sessions() as s:
            ref = s.get_one(Payment, payment_id).provider_ref
        if ref is None or ref not in self.provider.payments:
            return
        answer = self.provider.complete(ref, succeed=succeed)
        assert answer.status_code == 200, answer.text
        _note(f"pay: {answer.json()['result']}")
        self._drain()

    def _pick_booking(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(list(self.bookings)))

    @precondition(lambda self: self.bookings)
    @rule(data=st.data(), by=st.integers(1, 6))
    def extend(self, data: st.DataObject, by: int) -> None:
        bid = self._pick_booking(data)
        try:
            with self.sessions.begin() as s:
                booking = self._booking(s, bid)
                svc.extend_booking(s, booking, booking.end_time + by * SLOT, now=self.clock.now)
        except (Conflict, InvalidRequest):
            return
        self._drain()

    @precondition(lambda self: self.bookings)
    @rule(data=st.data())
    def change_plate(self, data: st.DataObject) -> None:
        bid = self._pick_booking(data)
        try:
            with self.sessions.begin() as s:
                booking = svc.change_plate(
                    s, self._booking(s, bid), self._new_plate(), now=self.clock.now
                )
                self.bookings[bid].plate = booking.plate
        except Conflict:
            return

    @precondition(lambda self: self.bookings)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        bid = self._pick_booking(data)
        try:
            with self.sessions.begin() as s:
                svc.cancel_booking(s, self._booking(s, bid), now=self.clock.now)
        except Conflict:
            return
        self._drain()

    def _arrivable(self) -> list[str]:
        with self.sessions() as s:
            confirmed = set(s.scalars(select(Booking.id).where(Booking.status == "confirmed")))
        return [b for b, m in self.bookings.items() if m.arrived is None and b in confirmed]

    @rule(data=st.data(), minutes=st.integers(-15, 90))
    def arrive(self, data: st.DataObject, minutes: int) -> None:
        """A confirmed booking's car comes in, early (within the grace) or late: the clock
        moves to then if that is still ahead."""
        candidates = self._arrivable()
        if not candidates:
            return
        bid = data.draw(st.sampled_from(candidates))
        model = self.bookings[bid]
        with self.sessions() as s:
            start, end = self._booking(s, bid).start_time, self._booking(s, bid).end_time
        self._move_to(start + timedelta(minutes=minutes))
        early = start - timedelta(minutes=self.policy.early_grace_minutes)
        if not early <= self.clock.now <= end:
            return
        outcome = self._event(
            GateEventKind.ENTRY,
            reservation_id=bid,
            reason="reservation_valid",
            plate=model.plate,
            stay_id=f"s_{bid}",
            visit_id=f"s_{bid}",
        )
        assert outcome == "stored:arrived", outcome
        _note("arrived")
        model.arrived = self.clock.now

    @rule(data=st.data(), minutes=st.integers(-240, 240), held_first=st.booleans())
    def leave(self, data: st.DataObject, minutes: int, held_first: bool) -> None:
        """A booked car leaves early, on time or late (the clock moves to its end plus
        ``minutes`` if that is still ahead); held first for what it owes."""
        inside = [b for b, m in self.bookings.items() if m.arrived and m.exited is None]
        if not inside:
            return
        bid = data.draw(st.sampled_from(inside))
        model = self.bookings[bid]
        with self.sessions() as s:
            end = self._booking(s, bid).end_time
        self._move_to(end + timedelta(minutes=minutes))
        common = {"reservation_id": bid, "plate": model.plate, "stay_id": f"s_{bid}"}
        with self.sessions() as s:
            stay = self._stay_of(s, f"s_{bid}")
            owes = stay is not None and owed_now(s, stay, self.clock.now).cents
        if held_first and owes:
            self._event(
                GateEventKind.DENIED, reason="payment_due", amount_owed_cents=owes, **common
            )
            return
        with self.sessions() as s:
            model.priced_until = self._priced_until(self._stay_of(s, f"s_{bid}"), self.clock.now)
        outcome = self._event(GateEventKind.EXIT, reason="exit_paid", **common)
        assert outcome.startswith("stored:exited"), outcome
        _note(outcome)
        model.exited = self.clock.now

    # -- drive-ups -----------------------------------------------------------------------------
    @rule()
    def drive_up(self) -> None:
        gate_stay_id = f"d_{len(self.drive_ups)}"
        plate = self._new_plate()
        outcome = self._event(
            GateEventKind.ENTRY,
            reason="drive_up",
            plate=plate,
            stay_id=gate_stay_id,
            visit_id=gate_stay_id,
        )
        assert outcome == "stored:stay_opened:drive_up", outcome
        self.drive_ups[gate_stay_id] = DriveUpModel(plate, self.clock.now)

    @rule(data=st.data())
    def drive_up_leaves(self, data: st.DataObject) -> None:
        inside = [d for d, m in self.drive_ups.items() if m.exited is None]
        if not inside:
            return
        gate_stay_id = data.draw(st.sampled_from(inside))
        model = self.drive_ups[gate_stay_id]
        with self.sessions() as s:
            stay = self._stay_of(s, gate_stay_id)
            assert stay is not None
            owes = owed_now(s, stay, self.clock.now).cents
            model.priced_until = self._priced_until(stay, self.clock.now)
        reason = "bill_later" if owes else "paid"
        self._event(
            GateEventKind.EXIT,
            reason=reason,
            plate=model.plate,
            stay_id=gate_stay_id,
            amount_owed_cents=owes,
        )
        model.exited = self.clock.now

    # -- paying --------------------------------------------------------------------------------
    @rule(data=st.data(), pay_now=st.booleans())
    def pay_by_plate(self, data: st.DataObject, pay_now: bool) -> None:
        """The driver asks for a payment of what a stay owes now (open or closed)."""
        with self.sessions() as s:
            stays = [
                stay.session_id
                for stay in s.scalars(select(Stay).order_by(Stay.id))
                if owed_now(s, stay, self.clock.now).cents
            ]
        if not stays:
            return
        session_id = data.draw(st.sampled_from(stays))
        try:
            with self.sessions.begin() as s:
                payment_id = start_stay_payment(s, get_stay(s, session_id), self.clock.now).id
        except Conflict:  # it owes nothing now
            return
        self._drain()  # the outbox opens its checkout (as POST /sessions/{id}/pay would)
        if pay_now:
            self._complete(payment_id, succeed=True)

    def _payable_refs(self) -> list[tuple[int, str]]:
        """Provider payments a customer could still complete (whatever our side thinks)."""
        with self.sessions() as s:
            rows = s.execute(
                select(Payment.id, Payment.provider_ref)
                .where(Payment.kind != PaymentKind.REFUND.value, Payment.provider_ref.is_not(None))
                .order_by(Payment.id)
            ).all()
        known = self.provider.payments
        return [
            (pid, ref) for pid, ref in rows if ref in known and known[ref].status != "succeeded"
        ]

    @rule(data=st.data(), succeed=st.sampled_from([True, True, True, False]))
    def pay(self, data: st.DataObject, succeed: bool) -> None:
        """The customer completes (or fails) one open checkout, even one we voided."""
        refs = self._payable_refs()
        if not refs:
            return
        payment_id, _ = data.draw(st.sampled_from(refs))
        self._complete(payment_id, succeed=succeed)

    @precondition(lambda self: self.delivered)
    @rule(data=st.data())
    def replay_webhook(self, data: st.DataObject) -> None:
        """A delivery the provider retries (same event id): applied once."""
        event = data.draw(st.sampled_from(self.delivered))
        answer = self.provider.deliver(event)
        assert answer.status_code == 200 and answer.json()["result"] == "duplicate"

    @precondition(lambda self: self.delivered)
    @rule(data=st.data())
    def late_or_repeated_event(self, data: st.DataObject) -> None:
        """An old event's object again under a new id (the checkout's and its intent's events,
        a failure arriving after the success)."""
        event = data.draw(st.sampled_from(self.delivered))
        obj = event["data"]["object"]
        answer = self.provider.deliver(self.provider.event(event["type"], obj))
        assert answer.status_code == 200
        self._drain()

    @rule(data=st.data())
    def paid_twice(self, data: st.DataObject) -> None:
        """A second, different capture of a payment already captured (two checkouts paid)."""
        with self.sessions() as s:
            rows = s.execute(
                select(Payment.id, Payment.amount_cents, Payment.currency).where(
                    Payment.kind != PaymentKind.REFUND.value, Payment.captured_cents > 0
                )
            ).all()
        if not rows:
            return
        pid, amount, currency = data.draw(st.sampled_from(sorted(rows)))
        ref = f"pi_second_{uuid.uuid4().hex[:12]}"
        with self.provider._lock:  # the provider took the money a second time
            from cloud_api.payments.local_provider import LocalPayment

            self.provider.payments[ref] = LocalPayment(
                ref, "", amount, currency.lower(), {"payment_id": str(pid)}, status="succeeded"
            )
        obj = self.provider._intent_object(self.provider.payments[ref])
        answer = self.provider.deliver(self.provider.event("payment_intent.succeeded", obj))
        assert answer.status_code == 200
        self._drain()

    # -- time ----------------------------------------------------------------------------------
    @rule(minutes=st.sampled_from([1, 7, 14, 20, 45, 130]))
    def tick(self, minutes: int) -> None:
        self.clock.advance(timedelta(minutes=minutes))
        with self.sessions.begin() as s:
            svc.expire_holds(s, self.clock.now)
        self._drain()

    # -- the ledger ----------------------------------------------------------------------------
    def _provider_net(self) -> dict[int, int]:
        """Per our payment id: what the provider captured less what it refunded."""
        net: dict[int, int] = {}
        for payment in self.provider.payments.values():
            if payment.status != "succeeded":
                continue
            pid = int(payment.metadata["payment_id"])
            net[pid] = net.get(pid, 0) + payment.amount - payment.refunded
        return net

    def _booking_cost(self, s: Session, booking: Booking, model: BookingModel) -> int:
        if booking.status in ("pending", "expired", "cancelled"):
            return 0
        price = booking.price_cents
        tariff, vehicle = self.policy.tariff, booking.vehicle_type
        grace = self.policy.overstay_grace_minutes
        if model.exited is None:
            stay = self._stay_of(s, f"s_{booking.id}")
            if stay is None or stay.paid_through is None:
                return price
            overstay = overstay_charge(
                end=booking.end_time,
                exited_at=stay.paid_through,
                grace_minutes=grace,
                tariff=tariff,
                vehicle_type=vehicle,
            )
            return price + overstay
        assert model.priced_until is not None
        credit = early_exit_credit(
            paid_cents=price,
            start=booking.start_time,
            end=booking.end_time,
            exited_at=model.exited,
            tariff=tariff,
            vehicle_type=vehicle,
            policy=self.early_exit[0],
            fee_cents=self.early_exit[1],
        )
        overstay = overstay_charge(
            end=booking.end_time,
            exited_at=model.priced_until,
            grace_minutes=grace,
            tariff=tariff,
            vehicle_type=vehicle,
        )
        return price - credit + overstay

    def _drive_up_cost(self, stay: Stay, model: DriveUpModel) -> int:
        until = model.priced_until if model.exited is not None else stay.paid_through
        if until is None:
            return 0
        return price_stay(self.policy.tariff, model.entered, until, "car")

    @invariant()
    def captured_less_refunded_is_what_each_stay_costs(self) -> None:
        net = self._provider_net()
        with self.sessions() as s:
            payments = {p.id: p for p in s.scalars(select(Payment))}
            stays = {st.id: st for st in s.scalars(select(Stay))}

            def owner(pid: int) -> str:
                payment = payments[pid]
                if payment.booking_id:
                    return payment.booking_id
                stay = stays[payment.stay_id]  # type: ignore[index]
                return stay.booking_id or stay.gate_stay_id

            paid: dict[str, int] = {}
            for pid, cents in net.items():
                paid[owner(pid)] = paid.get(owner(pid), 0) + cents
            for bid, model in self.bookings.items():
                booking = self._booking(s, bid)
                cost = self._booking_cost(s, booking, model)
                got = paid.get(bid, 0) + booking.amount_owed_cents
                assert got == cost, (
                    bid,
                    booking.status,
                    paid.get(bid, 0),
                    booking.amount_owed_cents,
                    cost,
                )
            for gate_stay_id, du in self.drive_ups.items():
                stay = self._stay_of(s, gate_stay_id)
                assert stay is not None
                owed = max(0, stay.amount_due_cents - stay.paid_cents) if du.exited else 0
                cost = self._drive_up_cost(stay, du)
                assert paid.get(gate_stay_id, 0) + owed == cost, (
                    gate_stay_id,
                    paid.get(gate_stay_id, 0),
                    owed,
                    cost,
                )
                assert paid.get(gate_stay_id, 0) == stay.paid_cents

    @invariant()
    def no_refund_without_a_capture(self) -> None:
        with self.sessions() as s:
            payments = {p.id: p for p in s.scalars(select(Payment))}
        for payment in payments.values():
            assert 0 <= payment.refunded_cents <= payment.captured_cents, payment.id
            if payment.kind != PaymentKind.REFUND.value:
                continue
            charge = payments.get(payment.refund_of or -1)
            assert charge is not None and charge.captured_cents > 0, payment.id
        for local in self.provider.payments.values():
            assert local.refunded <= (local.amount if local.status == "succeeded" else 0)

    @invariant()
    def nothing_is_owed_or_payable_on_a_settled_closed_stay(self) -> None:
        with self.sessions() as s:
            for stay in s.scalars(select(Stay).where(Stay.status == "closed")):
                owed = owed_now(s, stay, self.clock.now).cents
                if owed:
                    continue
                open_payments = s.scalars(
                    select(Payment).where(
                        Payment.status.in_(("requires_payment", "failed")),
                        Payment.kind != PaymentKind.REFUND.value,
                        (Payment.stay_id == stay.id)
                        | (
                            (Payment.booking_id == stay.booking_id)
                            & (Payment.booking_id.is_not(None))
                        ),
                    )
                ).all()
                assert not open_payments, (
                    stay.gate_stay_id,
                    [(p.id, p.kind) for p in open_payments],
                )


TestLedger = Ledger.TestCase
TestLedger.settings = settings(
    max_examples=int(os.environ.get("LEDGER_EXAMPLES", "25")),
    stateful_step_count=int(os.environ.get("LEDGER_STEPS", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    phases=[Phase.explicit, Phase.reuse, Phase.generate]
    + ([Phase.shrink] if os.environ.get("LEDGER_SHRINK", "1") == "1" else []),
)


@pytest.mark.integration
def test_the_ledger_adds_up_on_postgresql(postgres_server: PostgresInstance) -> None:
    """The same state machine on PostgreSQL, the production path (a database per example from
    a template): ``LEDGER_PG_EXAMPLES`` (default 10) examples of ``LEDGER_STEPS`` steps."""
    _PG["server"] = postgres_server
    try:
        run_state_machine_as_test(
            Ledger,
            settings=settings(
                TestLedger.settings,
                max_examples=int(os.environ.get("LEDGER_PG_EXAMPLES", "10")),
                database=None,
            ),
        )
    finally:
        _PG.clear()


# -- the bugs the state machine found, and the suspects it was pointed at ------------------------


def _check(machine: Ledger) -> None:
    machine.captured_less_refunded_is_what_each_stay_costs()
    machine.no_refund_without_a_capture()
    machine.nothing_is_owed_or_payable_on_a_settled_closed_stay()


def _book_paid(machine: Ledger, hours: int) -> str:
    start = machine.clock.now + timedelta(minutes=1)
    plate = machine._new_plate()
    req = svc.BookingRequest(machine.lot, plate, "car", start, start + timedelta(hours=hours))
    with machine.sessions.begin() as s:
        user = s.get_one(User, machine.users[0])
        bid = svc.create_booking(s, user, req, machine.clock.now).id
    machine.bookings[bid] = BookingModel(plate)
    machine._drain()
    machine._complete(_payments(machine, bid)[0].id, succeed=True)
    return bid


def _payments(machine: Ledger, bid: str, *statuses: str) -> list[Payment]:
    with machine.sessions() as s:
        stmt = select(Payment).where(Payment.booking_id == bid, Payment.kind != "refund")
        if statuses:
            stmt = stmt.where(Payment.status.in_(statuses))
        return list(s.scalars(stmt.order_by(Payment.id)))


def _extend(machine: Ledger, bid: str, hours: int) -> None:
    with machine.sessions.begin() as s:
        booking = s.get_one(Booking, bid)
        svc.extend_booking(
            s, booking, booking.end_time + timedelta(hours=hours), now=machine.clock.now
        )
    machine._drain()


def _pass(machine: Ledger, bid: str, kind: GateEventKind, **fields: Any) -> str:
    plate = machine.bookings[bid].plate
    return machine._event(kind, reservation_id=bid, plate=plate, stay_id=f"s_{bid}", **fields)


def _arrive_and_leave(machine: Ledger, bid: str, stay: timedelta) -> str:
    with machine.sessions() as s:
        start = s.get_one(Booking, bid).start_time
    machine._move_to(start)
    assert _pass(machine, bid, GateEventKind.ENTRY, reason="reservation_valid") == "stored:arrived"
    machine.bookings[bid].arrived = machine.clock.now
    machine._move_to(start + stay)
    machine.bookings[bid].priced_until = machine.clock.now
    outcome = _pass(machine, bid, GateEventKind.EXIT, reason="exit_paid")
    machine.bookings[bid].exited = machine.clock.now
    return outcome


def test_an_early_exit_credit_beyond_the_capture_is_taken_off_the_unpaid_extension() -> None:
    """Found: 1 h paid, 3 h more not paid yet, out after a minute: the refund is capped at the
    paid hour and the extension stayed owed in full (the customer paid for 4 h used 1 min)."""
    machine = Ledger()
    try:
        bid = _book_paid(machine, 1)
        _extend(machine, bid, 3)
        assert _arrive_and_leave(machine, bid, timedelta(minutes=1)) == "stored:exited:credit"
        _check(machine)
        with machine.sessions() as s:
            booking = s.get_one(Booking, bid)
            assert booking.amount_owed_cents < 750  # most of the unused extension is not owed
            owed = booking.amount_owed_cents
        [payable] = _payments(machine, bid, "requires_payment")
        assert payable.amount_cents == owed  # one payment, for what is left
        machine._complete(payable.id, succeed=True)
        _check(machine)
    finally:
        machine.teardown()


def test_an_extension_paid_after_the_booking_was_cancelled_is_refunded() -> None:
    """Found: the extension's checkout stayed open after a cancel; paying it kept the money."""
    machine = Ledger()
    try:
        bid = _book_paid(machine, 1)
        _extend(machine, bid, 2)
        [extension] = _payments(machine, bid, "requires_payment")
        with machine.sessions.begin() as s:
            svc.cancel_booking(s, s.get_one(Booking, bid), now=machine.clock.now)
        machine._drain()
        machine._complete(extension.id, succeed=True)  # the customer's open checkout
        _check(machine)
        local = machine.provider.payments[extension.provider_ref or ""]
        assert local.refunded == local.amount == extension.amount_cents
    finally:
        machine.teardown()


def test_an_overstay_settled_by_plate_cannot_be_paid_again() -> None:
    """Suspect (real): after a late exit, pay by plate settled the overstay but the booking's
    own overstay payment stayed payable, and paying it too kept the money."""
    machine = Ledger()
    try:
        bid = _book_paid(machine, 1)
        assert _arrive_and_leave(machine, bid, timedelta(hours=3)) == "stored:exited:overstay"
        [overstay] = _payments(machine, bid, "requires_payment")
        with machine.sessions.begin() as s:
            stay = machine._stay_of(s, f"s_{bid}")
            assert stay is not None
            by_plate = start_stay_payment(s, stay, machine.clock.now).id
        machine._drain()
        machine._complete(by_plate, succeed=True)
        _check(machine)
        assert _payments(machine, bid, "requires_payment", "failed") == []  # voided
        machine._complete(overstay.id, succeed=True)  # its checkout was still open
        _check(machine)
        local = machine.provider.payments[overstay.provider_ref or ""]
        assert local.refunded == local.amount
    finally:
        machine.teardown()


def test_a_closed_stay_settled_by_the_booking_payment_cannot_be_paid_by_plate() -> None:
    """Found (300 examples x 60 steps): out early with an extension unpaid, pay by plate was
    started for what the booking owed, then the booking's own payment settled it; the pay-by-
    plate checkout stayed payable (its money would only have been refunded)."""
    machine = Ledger()
    try:
        bid = _book_paid(machine, 1)
        _extend(machine, bid, 3)
        assert _arrive_and_leave(machine, bid, timedelta(minutes=1)) == "stored:exited:credit"
        [booking_payment] = _payments(machine, bid, "requires_payment")
        with machine.sessions.begin() as s:
            stay = machine._stay_of(s, f"s_{bid}")
            assert stay is not None
            by_plate = start_stay_payment(s, stay, machine.clock.now)
            by_plate_id, stay_id = by_plate.id, stay.id
        machine._drain()
        machine._complete(booking_payment.id, succeed=True)
        _check(machine)
        with machine.sessions() as s:
            assert s.get_one(Payment, by_plate_id).status == "cancelled"
            assert owed_now(s, s.get_one(Stay, stay_id), machine.clock.now).cents == 0
        machine._complete(by_plate_id, succeed=True)  # its checkout was still open
        _check(machine)
        with machine.sessions() as s:
            ref = s.get_one(Payment, by_plate_id).provider_ref or ""
        local = machine.provider.payments[ref]
        assert local.refunded == local.amount
    finally:
        machine.teardown()


def test_a_declined_attempt_on_a_voided_payment_leaves_it_voided() -> None:
    """Found (on PostgreSQL, 60 x 60): a decline on the open checkout of a payment we had
    voided made it ``failed`` again, payable and blocking, on a stay that owed nothing."""
    machine = Ledger()
    try:
        bid = _book_paid(machine, 1)
        _extend(machine, bid, 2)
        [extension] = _payments(machine, bid, "requires_payment")
        with machine.sessions.begin() as s:
            svc.cancel_booking(s, s.get_one(Booking, bid), now=machine.clock.now)
        machine._drain()
        machine._complete(extension.id, succeed=False)  # the customer's open checkout
        assert _payments(machine, bid, "requires_payment", "failed") == []
        _check(machine)
    finally:
        machine.teardown()
