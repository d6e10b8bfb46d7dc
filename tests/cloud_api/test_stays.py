"""Parking sessions (stays): opened and closed by gate events, bounded times, pay by plate, a stay
payment captured through the local provider's signed webhook and pushed to the lot as
``stay_paid``, and the bad input that must change nothing (another lot's session, enumeration,
a stay paid twice, exit reports out of bounds)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cloud_api import bookings as svc
from cloud_api.app import create_app
from cloud_api.lot_sync import GateEventRecord, IngestDeadLetter, LotStatus, store_message
from cloud_api.lot_sync import _ingest as ingest_module
from cloud_api.lots import availability, free_now
from cloud_api.migrate import upgrade
from cloud_api.models import Booking, LotChange, OutboxMessage, Payment, User
from cloud_api.outbox import OutboxWorker
from cloud_api.payments import InProcessTransport, LocalProvider
from cloud_api.payments.handlers import payment_handlers
from cloud_api.policies import current_policy, set_policy
from cloud_api.reported_times import bound_reported_time
from cloud_api.settings import Settings
from cloud_api.stays import Stay
from cloud_api.visits import record_arrival, record_exit
from devservices import World
from parkgate_protocol import (
    MAX_PRICED_DAYS,
    GateEvent,
    GateEventKind,
    encode,
    price_stay,
    topic,
)
from tests.support.cloud import T0, Clock, TestClient
from tests.support.payments import pay_booking

SECRET = "whsec_stays_test"
PLATE = "AB123CD"
SKEW = timedelta(seconds=120)


# -- bounds (pure) -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reported", "not_before", "expected", "flag"),
    [
        (T0, T0 - timedelta(hours=1), T0, None),  # inside
        (T0 + timedelta(seconds=119), None, T0 + timedelta(seconds=119), None),  # within skew
        (T0 + timedelta(seconds=121), None, T0, "after_now"),  # future: now
        (T0 - timedelta(hours=2), T0 - timedelta(hours=1), T0 - timedelta(hours=1), "before_entry"),
        (
            T0 - timedelta(days=3 * 365),
            T0 - timedelta(hours=1),
            T0 - timedelta(hours=1),
            "before_entry",
        ),
    ],
)
def test_a_reported_time_is_kept_between_the_entry_and_now_plus_skew(
    reported: datetime, not_before: datetime | None, expected: datetime, flag: str | None
) -> None:
    bounded = bound_reported_time(reported, not_before=not_before, now=T0, skew=SKEW)
    assert (bounded.at, bounded.flag) == (expected, flag)


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every database test here on a migrated SQLite file and on PostgreSQL (locks, the unique
    stay per lot, the migration's nullable booking id)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cloud.db'}"
    else:
        url = request.getfixturevalue("postgres_db")
    upgrade(url)
    return url


@dataclass
class Cloud:
    client: TestClient
    sessions: sessionmaker[Session]
    provider: LocalProvider
    worker: OutboxWorker
    clock: Clock
    world: World

    def event(self, lot_id: int, kind: GateEventKind, **fields: Any) -> str:
        fields.setdefault("occurred_at", self.clock.now)
        ev = GateEvent(event_id=uuid.uuid4().hex, lot_id=str(lot_id), kind=kind, **fields)
        with self.sessions.begin() as s:
            return store_message(s, topic(str(lot_id), "events"), encode(ev), self.clock.now)

    def stay(self, gate_stay_id: str) -> Stay:
        with self.sessions() as s:
            return s.scalars(select(Stay).where(Stay.gate_stay_id == gate_stay_id)).one()

    def money_rows(self) -> tuple[int, int, int, int]:
        """(payments, outbox messages, lot changes, sum of paid_cents of stays)."""
        with self.sessions() as s:
            return (
                s.scalar(select(func.count()).select_from(Payment)) or 0,
                s.scalar(select(func.count()).select_from(OutboxMessage)) or 0,
                s.scalar(select(func.count()).select_from(LotChange)) or 0,
                s.scalar(select(func.coalesce(func.sum(Stay.paid_cents), 0))) or 0,
            )

    def pay(self, session_id: str) -> dict[str, Any]:
        """POST pay, let the worker create the provider's payment, return the answer."""
        answer = self.client.post(f"/sessions/{session_id}/pay")
        assert answer.status_code == 201, answer.text
        self.worker.run_once()
        return dict(answer.json())

    def provider_ref(self, payment_id: int) -> str:
        with self.sessions() as s:
            ref = s.get_one(Payment, payment_id).provider_ref
        assert ref is not None
        return ref


def _cloud(database_url: str, world: World, clock: Clock, **settings: Any) -> Iterator[Cloud]:
    provider = LocalProvider(webhook_secret=SECRET, webhook_url="/payments/webhook")
    app = create_app(
        Settings(
            database_url=database_url,
            hold_sweep_seconds=0,
            webhook_secret=SECRET,
            public_url="https://park.example",
            **settings,
        ),
        clock=clock,
        payment_provider=provider,
    )
    sessions = app.state.sessions
    with (
        TestClient(app) as client,
        httpx.Client(transport=InProcessTransport(app), base_url="http://cloud.test") as hooks,
    ):
        provider.use_http_client(hooks)
        worker = OutboxWorker(sessions, payment_handlers(provider, app.state.pay_links))
        yield Cloud(client, sessions, provider, worker, clock, world)


@pytest.fixture
def cloud(database_url: str, world: World, clock: Clock) -> Iterator[Cloud]:
    yield from _cloud(database_url, world, clock)


def _drive_up(cloud: Cloud, lot_id: int, stay_id: str = "v_1", plate: str = PLATE) -> None:
    outcome = cloud.event(
        lot_id,
        GateEventKind.ENTRY,
        reason="drive_up",
        stay_id=stay_id,
        visit_id=stay_id,
        plate=plate,
    )
    assert outcome == "stored:stay_opened:drive_up"


def _tariff_price(cloud: Cloud, lot_id: int, start: datetime, end: datetime) -> int:
    with cloud.sessions() as s:
        return price_stay(current_policy(s, lot_id).tariff, start, end, "car")


# -- stays from gate events ----------------------------------------------------------------------


def test_a_drive_up_entry_opens_a_stay_and_its_exit_closes_it_at_the_tariff(cloud: Cloud) -> None:
    lot = cloud.world.lot_id
    _drive_up(cloud, lot)
    stay = cloud.stay("v_1")
    assert (stay.kind, stay.status, stay.entered_at, stay.plate) == ("drive_up", "open", T0, PLATE)
    assert stay.session_id.startswith("ps_") and len(stay.session_id) >= 26
    cloud.clock.advance(timedelta(hours=2, minutes=30))
    outcome = cloud.event(lot, GateEventKind.EXIT, reason="exit_paid", stay_id="v_1", plate=PLATE)
    owed = _tariff_price(cloud, lot, T0, cloud.clock.now)
    assert owed > 0 and outcome == f"stored:stay_closed:owes:{owed}"
    stay = cloud.stay("v_1")
    assert (stay.status, stay.exited_at, stay.amount_due_cents) == ("closed", cloud.clock.now, owed)


def test_an_entry_sent_twice_opens_one_stay(cloud: Cloud) -> None:
    _drive_up(cloud, cloud.world.lot_id)
    cloud.event(
        cloud.world.lot_id, GateEventKind.ENTRY, reason="drive_up", stay_id="v_1", plate=PLATE
    )
    with cloud.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Stay)) == 1


def test_a_redelivered_event_is_a_duplicate_another_refusal_is_dead_lettered(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A redelivery is answered ``duplicate`` before any INSERT; a constraint that refuses an
    event's effect for another reason is never mistaken for a duplicate (which would be acked
    and forgotten): the event is dead-lettered, kept for an operator."""
    lot = cloud.world.lot_id
    event = GateEvent(
        event_id=uuid.uuid4().hex,
        lot_id=str(lot),
        kind=GateEventKind.ENTRY,
        reason="drive_up",
        stay_id="v_1",
        plate=PLATE,
        occurred_at=cloud.clock.now,
    )
    payload = encode(event)
    where = topic(str(lot), "events")
    with cloud.sessions.begin() as s:
        assert store_message(s, where, payload, cloud.clock.now).startswith("stored:")
    with cloud.sessions.begin() as s:
        assert store_message(s, where, payload, cloud.clock.now) == "duplicate"

    def refuse(*_: object) -> str:
        raise IntegrityError("INSERT INTO stays", {}, Exception("another constraint"))

    monkeypatch.setattr(ingest_module, "_apply_visit", refuse)
    other = event.model_copy(update={"event_id": uuid.uuid4().hex, "stay_id": "v_2"})
    with cloud.sessions.begin() as s:
        assert store_message(s, where, encode(other), cloud.clock.now) == "dead:unstorable"
    with cloud.sessions() as s:
        assert s.get(GateEventRecord, other.event_id) is None
        letters = s.scalars(select(IngestDeadLetter)).all()
        assert [(d.reason, other.event_id in d.payload) for d in letters] == [("unstorable", True)]


def test_a_bill_later_exit_closes_the_stay_owing_the_gates_amount(cloud: Cloud) -> None:
    lot = cloud.world.lot_id
    _drive_up(cloud, lot)
    cloud.clock.advance(timedelta(hours=1))
    gate_said = _tariff_price(cloud, lot, T0, cloud.clock.now)
    cloud.event(
        lot,
        GateEventKind.EXIT,
        reason="bill_later",
        stay_id="v_1",
        plate=PLATE,
        amount_owed_cents=gate_said,
    )
    stay = cloud.stay("v_1")
    assert (stay.status, stay.amount_due_cents, stay.paid_cents) == ("closed", gate_said, 0)
    listed = cloud.client.get(f"/lots/{lot}/sessions", params={"plate": "ab 123 cd"}).json()
    assert [(x["session_id"], x["amount_due_cents"]) for x in listed] == [
        (stay.session_id, gate_said)
    ]


@pytest.mark.parametrize("gate_off_by", [-100, 100_000], ids=["gate_less", "gate_more"])
def test_a_bill_later_exit_never_bills_more_than_the_clouds_price(
    cloud: Cloud, gate_off_by: int
) -> None:
    lot = cloud.world.lot_id
    _drive_up(cloud, lot)
    cloud.clock.advance(timedelta(hours=1))
    ours = _tariff_price(cloud, lot, T0, cloud.clock.now)
    gate_said = ours + gate_off_by
    cloud.event(
        lot,
        GateEventKind.EXIT,
        reason="bill_later",
        stay_id="v_1",
        plate=PLATE,
        amount_owed_cents=gate_said,
    )
    assert cloud.stay("v_1").amount_due_cents == min(gate_said, ours)


def test_a_stay_the_cloud_cannot_price_is_flagged_and_owes_what_the_driver_was_told(
    cloud: Cloud,
) -> None:
    """Over ten years (a clock or data error) the tariff refuses to price: the cloud cannot cap
    the gate's amount, so the stay owes what the gate showed the driver, no more, and is flagged
    for an operator; it is neither free nor priced by a guess."""
    lot = cloud.world.lot_id
    _drive_up(cloud, lot)
    cloud.clock.advance(timedelta(days=MAX_PRICED_DAYS + 1))
    outcome = cloud.event(
        lot,
        GateEventKind.EXIT,
        reason="bill_later",
        stay_id="v_1",
        plate=PLATE,
        amount_owed_cents=1234,
    )
    stay = cloud.stay("v_1")
    assert outcome == "stored:stay_closed:owes:1234"
    assert (stay.status, stay.amount_due_cents, stay.time_flag) == ("closed", 1234, "unpriceable")


def test_a_permit_stay_owes_nothing_and_is_not_listed(cloud: Cloud) -> None:
    lot = cloud.world.lot_id
    cloud.event(lot, GateEventKind.ENTRY, reason="allowlisted", stay_id="v_9", plate=PLATE)
    assert cloud.stay("v_9").kind == "permit"
    cloud.clock.advance(timedelta(hours=5))
    assert cloud.client.get(f"/lots/{lot}/sessions", params={"plate": PLATE}).json() == []


# -- bounded booking times -----------------------------------------------------------------------


def _arrived_booking(cloud: Cloud, *, arrive: bool = True, hours: int = 4) -> str:
    with cloud.sessions.begin() as s:
        user = s.scalars(select(User).where(User.email == "alice@example.test")).one()
        req = svc.BookingRequest(
            cloud.world.lot_id, PLATE, "car", T0 + timedelta(minutes=5), T0 + timedelta(hours=hours)
        )
        booking = svc.create_booking(s, user, req, T0)
        pay_booking(s, booking.id, T0)  # captured, as the webhook would: a credit is refundable
        if arrive:
            record_arrival(s, booking, at=booking.start_time, now=booking.start_time)
        return booking.id


def _refund_rows(s: Session) -> int:
    return s.scalar(select(func.count()).where(Payment.kind == "refund")) or 0


@pytest.mark.parametrize(
    "reported",
    [timedelta(hours=-1), timedelta(days=-3 * 365)],
    ids=["exit_before_arrival", "exit_years_ago"],
)
def test_an_exit_before_the_arrival_earns_no_credit(cloud: Cloud, reported: timedelta) -> None:
    booking_id = _arrived_booking(cloud)
    now = T0 + timedelta(hours=1)
    with cloud.sessions.begin() as s:
        booking = s.get_one(Booking, booking_id)
        outcome = record_exit(s, booking, at=booking.start_time + reported, now=now)
        assert (outcome.credit_cents, outcome.time_flag) == (0, "before_entry")
        assert booking.exited_at == booking.arrived_at
        assert (booking.refunded_cents, _refund_rows(s)) == (0, 0)


def test_an_exit_in_the_future_is_recorded_now_without_credit(cloud: Cloud) -> None:
    booking_id = _arrived_booking(cloud)
    now = T0 + timedelta(hours=1)
    with cloud.sessions.begin() as s:
        booking = s.get_one(Booking, booking_id)
        outcome = record_exit(s, booking, at=now + timedelta(hours=2), now=now)
        assert (outcome.credit_cents, outcome.time_flag, booking.exited_at) == (0, "after_now", now)
        assert _refund_rows(s) == 0


def test_an_honest_early_exit_still_earns_its_credit(cloud: Cloud) -> None:
    """The control for the three above: the same exit, reported when it happened."""
    booking_id = _arrived_booking(cloud)
    now = T0 + timedelta(hours=1)
    with cloud.sessions.begin() as s:
        outcome = record_exit(s, s.get_one(Booking, booking_id), at=now, now=now)
        assert outcome.credit_cents > 0 and outcome.time_flag is None


def test_an_exit_before_arrival_over_mqtt_earns_no_credit(cloud: Cloud) -> None:
    booking_id = _arrived_booking(cloud)
    cloud.clock.now = T0 + timedelta(hours=1)
    outcome = cloud.event(
        cloud.world.lot_id,
        GateEventKind.EXIT,
        reason="exit_paid",
        reservation_id=booking_id,
        plate=PLATE,
        occurred_at=T0 - timedelta(days=400),
    )
    assert outcome == "stored:exited"
    with cloud.sessions() as s:
        booking = s.get_one(Booking, booking_id)
        assert (booking.refunded_cents, _refund_rows(s)) == (0, 0)
        assert booking.exited_at == booking.arrived_at


def test_a_never_arrived_booking_earns_no_credit_unless_the_policy_says_so(cloud: Cloud) -> None:
    booking_id = _arrived_booking(cloud, arrive=False)
    now = T0 + timedelta(hours=1)
    with cloud.sessions.begin() as s:
        booking = s.get_one(Booking, booking_id)
        outcome = record_exit(s, booking, at=now, now=now)
        assert outcome.credit_cents == 0 and booking.arrived_at is None
        assert _refund_rows(s) == 0
    with cloud.sessions.begin() as s:
        fields = {**current_policy(s, cloud.world.lot_id).to_wire(), "credit_unused_booking": True}
        set_policy(s, cloud.world.lot_id, fields, actor=None, now=now)
    booking_id = _arrived_booking(cloud, arrive=False)
    with cloud.sessions.begin() as s:
        outcome = record_exit(s, s.get_one(Booking, booking_id), at=now, now=now)
        assert outcome.credit_cents > 0


# -- pay by plate ------------------------------------------------------------------------------


def test_pay_by_plate_captured_through_the_webhook_pushes_stay_paid(cloud: Cloud) -> None:
    lot = cloud.world.lot_id
    with cloud.sessions.begin() as s:  # the feed's first change, so the lot is at seq 1
        set_policy(s, lot, current_policy(s, lot).to_wire(), actor=None, now=T0)
    _drive_up(cloud, lot)
    cloud.clock.advance(timedelta(minutes=70))
    listed = cloud.client.get(f"/lots/{lot}/sessions", params={"plate": PLATE})
    assert listed.status_code == 200
    [row] = listed.json()
    owed = _tariff_price(cloud, lot, T0, cloud.clock.now)
    assert set(row) == {"session_id", "entered_at", "amount_due_cents", "currency", "pay_url"}
    assert row["amount_due_cents"] == owed
    assert row["pay_url"] == f"https://park.example/lots/{lot}/pay?plate={PLATE}"
    paid = cloud.pay(row["session_id"])
    with cloud.sessions() as s:  # the local provider's checkout is our hosted pay page
        public_id = s.get_one(Payment, paid["payment_id"]).public_id
    assert paid["checkout_url"] == f"https://park.example/pay/{public_id}"
    assert paid["status"] == "requires_payment"
    result = cloud.provider.complete(cloud.provider_ref(paid["payment_id"]))
    assert result.json()["result"] == "stay_paid"
    stay = cloud.stay("v_1")
    assert (stay.paid_cents, stay.paid_through) == (owed, cloud.clock.now)
    expected = {
        "stay_id": "v_1",
        "plate": PLATE,
        "paid_cents": owed,
        "currency": stay.currency,
        "paid_through": cloud.clock.now.isoformat().replace("+00:00", "Z"),
        "payment_id": str(paid["payment_id"]),
    }
    device = cloud.world.auth("device")
    page = cloud.client.get(f"/lots/{lot}/changes", params={"since": 1}, headers=device)
    assert page.status_code == 200, page.text
    [change] = [c for c in page.json()["changes"] if c["kind"] == "stay_paid"]
    assert (change["cause"], change["stay_payment"]) == ("paid", expected)
    # a lot that needs a snapshot gets the payment of the paid stay still inside
    snap = cloud.client.get(f"/lots/{lot}/changes", params={"since": 0}, headers=device).json()
    assert snap["snapshot"] is True and snap["stay_payments"] == [expected]
    # paid through now: nothing to pay while the paid exit window lasts
    assert cloud.client.get(f"/lots/{lot}/sessions", params={"plate": PLATE}).json() == []


def test_a_second_pay_within_minutes_reuses_the_unpaid_payment(cloud: Cloud) -> None:
    _drive_up(cloud, cloud.world.lot_id)
    cloud.clock.advance(timedelta(minutes=30))
    sid = cloud.stay("v_1").session_id
    first = cloud.client.post(f"/sessions/{sid}/pay").json()
    assert cloud.client.post(f"/sessions/{sid}/pay").json() == first


def test_a_stay_paid_twice_refunds_the_second_capture(cloud: Cloud) -> None:
    lot = cloud.world.lot_id
    _drive_up(cloud, lot)
    cloud.clock.advance(timedelta(minutes=50))
    sid = cloud.stay("v_1").session_id
    first = cloud.pay(sid)
    cloud.clock.advance(timedelta(minutes=11))  # a second tab, a second payment
    second = cloud.pay(sid)
    assert first["payment_id"] != second["payment_id"]
    cloud.provider.complete(cloud.provider_ref(first["payment_id"]))
    stay = cloud.stay("v_1")
    before = cloud.money_rows()
    result = cloud.provider.complete(cloud.provider_ref(second["payment_id"]))
    assert result.json()["result"] == "stay_paid_twice:refunded"
    after = cloud.stay("v_1")
    assert (after.paid_cents, after.paid_through) == (stay.paid_cents, stay.paid_through)
    with cloud.sessions() as s:
        second_row = s.get_one(Payment, second["payment_id"])
        refund = s.scalars(select(Payment).where(Payment.kind == "refund")).one()
        assert (refund.amount_cents, refund.stay_id) == (second_row.amount_cents, stay.id)
        changes = s.scalar(select(func.count()).where(LotChange.kind == "stay_paid"))
    assert changes == 1  # no second push
    # one refund row and its outbox message, nothing else changed
    assert cloud.money_rows() == (before[0] + 1, before[1] + 1, before[2], before[3])
    cloud.worker.run_once()
    assert cloud.provider.payments[cloud.provider_ref(second["payment_id"])].refunded == (
        second_row.amount_cents
    )


def test_a_payment_for_another_lots_session_changes_nothing(cloud: Cloud) -> None:
    other = cloud.world.other_lot_id
    _drive_up(cloud, other)
    cloud.clock.advance(timedelta(hours=1))
    sid = cloud.stay("v_1").session_id
    before = cloud.money_rows()
    answer = cloud.client.post(f"/lots/{cloud.world.lot_id}/sessions/{sid}/pay")
    assert (answer.status_code, answer.json()["reason"]) == (404, "session_not_found")
    page = cloud.client.post(f"/lots/{cloud.world.lot_id}/pay/{sid}", follow_redirects=False)
    assert page.status_code == 404
    listed = cloud.client.get(f"/lots/{cloud.world.lot_id}/sessions", params={"plate": PLATE})
    assert listed.json() == []
    assert cloud.money_rows() == before
    assert cloud.client.post(f"/lots/{other}/sessions/{sid}/pay").status_code == 201


def test_an_unknown_session_or_a_stay_owing_nothing_is_refused(cloud: Cloud) -> None:
    before = cloud.money_rows()
    assert cloud.client.post("/sessions/ps_nope/pay").status_code == 404
    cloud.event(
        cloud.world.lot_id, GateEventKind.ENTRY, reason="allowlisted", stay_id="p", plate=PLATE
    )
    answer = cloud.client.post(f"/sessions/{cloud.stay('p').session_id}/pay")
    assert (answer.status_code, answer.json()["reason"]) == (409, "nothing_owed")
    assert cloud.money_rows()[:2] == before[:2]


@pytest.fixture
def strict(database_url: str, world: World, clock: Clock) -> Iterator[Cloud]:
    yield from _cloud(
        database_url,
        world,
        clock,
        pay_by_plate_per_client_per_minute=5,
        pay_by_plate_per_lot_per_minute=100,
    )


def test_enumerating_plates_is_rate_limited_and_shows_nothing_personal(strict: Cloud) -> None:
    lot = strict.world.lot_id
    _drive_up(strict, lot)
    strict.clock.advance(timedelta(hours=1))
    known = strict.client.get(f"/lots/{lot}/sessions", params={"plate": PLATE})
    unknown = strict.client.get(f"/lots/{lot}/sessions", params={"plate": "ZZ999ZZ"})
    assert (known.status_code, unknown.status_code, unknown.json()) == (200, 200, [])
    text = known.text.lower()
    for private in ("alice", "@", "bk_", "booking", "v_1", "drive_up"):
        assert private not in text
    before = strict.money_rows()
    answers = [
        strict.client.get(f"/lots/{lot}/sessions", params={"plate": f"XX{n:03d}"}).status_code
        for n in range(5)
    ]
    assert answers == [200, 200, 200, 429, 429]
    blocked = strict.client.post(f"/sessions/{strict.stay('v_1').session_id}/pay")
    assert (blocked.status_code, blocked.json()["reason"]) == (429, "rate_limited")
    assert strict.money_rows() == before
    # the window slides: hits age out a bucket (10 s) after the minute they count in
    strict.clock.advance(timedelta(seconds=59))
    assert strict.client.get(f"/lots/{lot}/sessions", params={"plate": PLATE}).status_code == 429
    strict.clock.advance(timedelta(seconds=11))
    assert strict.client.get(f"/lots/{lot}/sessions", params={"plate": PLATE}).status_code == 200


@pytest.fixture
def busy_lot(database_url: str, world: World, clock: Clock) -> Iterator[Cloud]:
    yield from _cloud(
        database_url,
        world,
        clock,
        pay_by_plate_per_client_per_minute=100,
        pay_by_plate_per_lot_per_minute=3,
    )


def test_a_lot_is_rate_limited_across_clients(busy_lot: Cloud) -> None:
    lot, other = busy_lot.world.lot_id, busy_lot.world.other_lot_id
    codes = [
        busy_lot.client.get(f"/lots/{lot}/sessions", params={"plate": f"YY{n}"}).status_code
        for n in range(4)
    ]
    assert codes == [200, 200, 200, 429]
    assert (
        busy_lot.client.get(f"/lots/{other}/sessions", params={"plate": "YY1"}).status_code == 200
    )


def test_bad_plates_and_lots_are_4xx(cloud: Cloud) -> None:
    lot = cloud.world.lot_id
    assert cloud.client.get(f"/lots/{lot}/sessions", params={"plate": "!"}).status_code == 422
    assert cloud.client.get("/lots/999999/sessions", params={"plate": PLATE}).status_code == 404
    assert cloud.client.get(f"/lots/{lot}/sessions").status_code == 422


# -- the page ------------------------------------------------------------------------------------


def test_the_pay_page_lists_the_plates_stays_and_pays_by_redirect(cloud: Cloud) -> None:
    lot = cloud.world.lot_id
    _drive_up(cloud, lot)
    cloud.clock.advance(timedelta(hours=1))
    empty = cloud.client.get(f"/lots/{lot}/pay")
    assert empty.status_code == 200 and "Number plate" in empty.text
    page = cloud.client.get(f"/lots/{lot}/pay", params={"plate": PLATE})
    owed = _tariff_price(cloud, lot, T0, cloud.clock.now)
    assert f'value="{PLATE}"' in page.text and f"{owed / 100:.2f}" in page.text
    sid = cloud.stay("v_1").session_id
    assert f'action="/lots/{lot}/pay/{sid}"' in page.text
    paid = cloud.client.post(f"/lots/{lot}/pay/{sid}", follow_redirects=False)
    assert paid.status_code == 303
    assert paid.headers["location"].startswith("https://park.example/pay/")
    hostile = cloud.client.get(f"/lots/{lot}/pay", params={"plate": "<script>"})
    assert "<script>" not in hostile.text and hostile.status_code == 422


# -- overstay on a booking -----------------------------------------------------------------------


def _booking_inside(cloud: Cloud, stay_id: str) -> tuple[str, datetime]:
    """A paid 2-hour booking whose car entered (the gate's entry event, stay ``stay_id``); its
    id and its end."""
    booking_id = _arrived_booking(cloud, hours=2)
    cloud.event(
        cloud.world.lot_id,
        GateEventKind.ENTRY,
        reason="reservation_valid",
        reservation_id=booking_id,
        stay_id=stay_id,
        plate=PLATE,
    )
    with cloud.sessions() as s:
        return booking_id, s.get_one(Booking, booking_id).end_time


def test_a_held_overstay_owes_pay_by_plate_and_emails_once(cloud: Cloud) -> None:
    lot = cloud.world.lot_id
    cloud.clock.now = T0
    booking_id, end = _booking_inside(cloud, "v_b")
    assert cloud.stay("v_b").kind == "booking"
    cloud.clock.now = end + timedelta(hours=1)
    for _ in range(2):  # held twice: one email
        outcome = cloud.event(
            lot,
            GateEventKind.DENIED,
            reason="payment_due",
            stay_id="v_b",
            plate=PLATE,
            amount_owed_cents=250,
        )
        assert outcome == "stored:payment_due:250"
    with cloud.sessions() as s:
        emails = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "notify.email")).all()
        overstay = [m for m in emails if m.payload["template"] == "overstay"]
    assert len(overstay) == 1
    [row] = cloud.client.get(f"/lots/{lot}/sessions", params={"plate": PLATE}).json()
    with cloud.sessions() as s:
        tariff = current_policy(s, lot).tariff
    assert row["amount_due_cents"] == price_stay(tariff, end, cloud.clock.now, "car")
    paid = cloud.pay(row["session_id"])
    assert cloud.provider.complete(cloud.provider_ref(paid["payment_id"])).json()["result"] == (
        "stay_paid"
    )
    cloud.clock.advance(timedelta(minutes=2))  # leaves inside the paid window
    cloud.event(lot, GateEventKind.EXIT, reason="paid", stay_id="v_b", plate=PLATE)
    with cloud.sessions() as s:
        booking = s.get_one(Booking, booking_id)
        assert (booking.status, booking.amount_owed_cents) == ("completed", 0)
        assert not s.scalars(select(Payment).where(Payment.kind == "overstay")).all()


def test_an_overstay_paid_by_plate_is_not_sold_again_as_an_extension(cloud: Cloud) -> None:
    """Found by the ledger state machine: pay by plate paid the overstay, then an extension
    over the same time was owed in full, and the exit (priced on the new end) gave nothing
    back: the same hour paid twice. The extension is refused and nothing changes."""
    lot = cloud.world.lot_id
    booking_id, end = _booking_inside(cloud, "v_b")
    cloud.clock.now = end + timedelta(hours=1)
    [row] = cloud.client.get(f"/lots/{lot}/sessions", params={"plate": PLATE}).json()
    paid = cloud.pay(row["session_id"])
    assert cloud.provider.complete(cloud.provider_ref(paid["payment_id"])).json()["result"] == (
        "stay_paid"
    )
    before = cloud.money_rows()
    with cloud.sessions() as s:
        booking = s.get_one(Booking, booking_id)
        terms = (booking.end_time, booking.price_cents, booking.amount_owed_cents)
    answer = cloud.client.post(
        f"/bookings/{booking_id}/extend",
        json={"end_time": (end + timedelta(hours=3)).isoformat()},
        headers=cloud.world.auth("alice"),
    )
    assert (answer.status_code, answer.json()["reason"]) == (409, "paid_by_plate")
    assert cloud.money_rows() == before
    with cloud.sessions() as s:
        booking = s.get_one(Booking, booking_id)
        assert (booking.end_time, booking.price_cents, booking.amount_owed_cents) == terms


# -- occupancy -----------------------------------------------------------------------------------


def test_drive_ups_inside_take_bookable_spaces_never_below_zero(cloud: Cloud) -> None:
    lot = cloud.world.lot_id  # 3 car spaces and 1 ev
    now = cloud.clock.now

    def free_cars(start: datetime) -> int:
        with cloud.sessions() as s:
            found = availability(s, lot, start, start + timedelta(hours=2), now, "car")
            assert found is not None
            return int(found["vehicle_types"][0]["free_spaces"])

    assert free_cars(now) == 3
    for inside, expected in ((2, 1), (7, 0)):
        with cloud.sessions.begin() as s:
            s.merge(LotStatus(lot_id=lot, state="online", drive_up_inside=inside, received_at=now))
        assert free_cars(now) == expected
        with cloud.sessions() as s:
            assert free_now(s, [lot], now)[lot] == max(0, 4 - inside)
    assert free_cars(now + timedelta(days=3)) == 3  # they will have left by then


def test_the_heartbeat_stores_what_the_lot_counts_inside(cloud: Cloud) -> None:
    from parkgate_protocol import Status

    lot = str(cloud.world.lot_id)
    beat = Status(
        lot_id=lot,
        state="online",
        at=datetime.now(UTC),
        cars_inside=9,
        drive_up_inside=4,
        clock_offset_s=-1.5,
    )
    with cloud.sessions.begin() as s:
        assert store_message(s, topic(lot, "status"), encode(beat), cloud.clock.now) == "status"
    with cloud.sessions() as s:
        row = s.get_one(LotStatus, cloud.world.lot_id)
        assert (row.cars_inside, row.drive_up_inside, row.clock_offset_s) == (9, 4, -1.5)


# -- PUT /parkingAccess: the same bounds, the booking's stay ---------------------------------------


def test_a_device_reporting_times_out_of_bounds_gets_no_credit(cloud: Cloud) -> None:
    lot = cloud.world.lot_id
    booking_id = _arrived_booking(cloud, arrive=False)
    device = cloud.world.auth("device")
    cloud.clock.now = T0 + timedelta(hours=1)
    body = {"parking_lot_id": lot, "plate": PLATE, "booking_id": booking_id}
    future = (cloud.clock.now + timedelta(days=2)).isoformat()
    arrived = cloud.client.put(
        "/parkingAccess", json={**body, "arrived_at": future}, headers=device
    )
    assert arrived.status_code == 200, arrived.text
    with cloud.sessions() as s:
        assert s.get_one(Booking, booking_id).arrived_at == cloud.clock.now  # not in 2 days
        [stay] = s.scalars(select(Stay)).all()
        assert (stay.kind, stay.booking_id, stay.status) == ("booking", booking_id, "open")
    before = cloud.money_rows()
    years_ago = (T0 - timedelta(days=5 * 365)).isoformat()
    left = cloud.client.put("/parkingAccess", json={**body, "exited_at": years_ago}, headers=device)
    assert left.status_code == 200, left.text
    assert (left.json()["credit_cents"], left.json()["overstay_cents"]) == (0, 0)
    with cloud.sessions() as s:
        booking = s.get_one(Booking, booking_id)
        assert (booking.exited_at, booking.refunded_cents) == (cloud.clock.now, 0)
        assert s.get_one(Stay, stay.id).status == "closed"
    payments, _, _, paid = cloud.money_rows()
    assert (payments, paid) == (before[0], before[3])  # no refund, no charge


def test_an_exit_past_end_and_grace_leaves_the_booking_stay_owing(cloud: Cloud) -> None:
    lot = cloud.world.lot_id
    booking_id, end = _booking_inside(cloud, "v_late")
    cloud.clock.now = end + timedelta(hours=2)
    outcome = cloud.event(
        lot,
        GateEventKind.EXIT,
        reason="bill_later",
        reservation_id=booking_id,
        stay_id="v_late",
        plate=PLATE,
    )
    assert outcome == "stored:exited:overstay"
    with cloud.sessions() as s:
        owed = s.get_one(Booking, booking_id).amount_owed_cents
        emails = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "notify.email")).all()
    assert owed > 0 and [m.payload["template"] for m in emails].count("overstay") == 1
    assert cloud.stay("v_late").status == "closed"
    [row] = cloud.client.get(f"/lots/{lot}/sessions", params={"plate": PLATE}).json()
    assert row["amount_due_cents"] == owed
    paid = cloud.pay(row["session_id"])
    assert cloud.provider.complete(cloud.provider_ref(paid["payment_id"])).json()["result"] == (
        "stay_paid"
    )
    with cloud.sessions() as s:
        assert s.get_one(Booking, booking_id).amount_owed_cents == 0
    assert cloud.client.get(f"/lots/{lot}/sessions", params={"plate": PLATE}).json() == []


def test_a_declined_stay_payment_applies_nothing(cloud: Cloud) -> None:
    _drive_up(cloud, cloud.world.lot_id)
    cloud.clock.advance(timedelta(hours=1))
    paid = cloud.pay(cloud.stay("v_1").session_id)
    before = cloud.money_rows()
    cloud.provider.decline_next()
    result = cloud.provider.complete(cloud.provider_ref(paid["payment_id"]))
    assert result.json()["result"] == "charge_failed"  # the stay still owes; pay again
    assert cloud.money_rows() == before and cloud.stay("v_1").paid_through is None
    assert cloud.client.post(f"/sessions/{cloud.stay('v_1').session_id}/pay").status_code == 201
