"""Local provider end to end: book → pay → webhook → confirmed → email; early exit → refund."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from cloud_api.daemons import outbox_handlers
from cloud_api.models import Booking, Lot, Payment, utcnow
from cloud_api.notifications import SmtpMailer, SmtpSettings
from cloud_api.outbox import OutboxWorker
from cloud_api.visits import record_exit
from devservices import LocalInbox, wait_for
from tests.cloud_api.test_webhooks import Harness, harness  # noqa: F401  (fixture)


def _worker(h: Harness, inbox: LocalInbox) -> OutboxWorker:
    mailer = SmtpMailer(SmtpSettings(inbox.host, inbox.port, "ParkGate <noreply@parkgate.test>"))
    return OutboxWorker(h.sessions, outbox_handlers(mailer=mailer, provider=h.provider))


def test_book_pay_webhook_confirm_email(harness: Harness) -> None:  # noqa: F811
    with LocalInbox() as inbox:
        worker = _worker(harness, inbox)
        booking_id = harness.book()
        assert harness.status(booking_id) == "pending"
        worker.run_once()  # payment.create → provider
        with harness.sessions() as session:
            payment = session.scalars(select(Payment).where(Payment.booking_id == booking_id)).one()
        assert payment.provider == "local" and payment.provider_ref
        assert not inbox.messages  # nothing is mailed before the payment succeeds

        response = harness.provider.complete(payment.provider_ref)  # the customer pays
        assert response.status_code == 200
        assert harness.status(booking_id) == "confirmed"

        worker.run_once()  # notify.email → SMTP
        wait_for(lambda: inbox.messages, what="the confirmation email")
        (mail,) = inbox.messages
        assert mail["To"] == "ana@example.com"
        assert mail["Subject"] == f"Booking {booking_id} confirmed"
        text = mail.get_body(preferencelist=("plain",))  # the text part (the HTML has the QR)
        assert text is not None
        assert f"{payment.amount_cents / 100:.2f}" in text.get_content()
        assert "Central" in text.get_content()


def test_early_exit_refund_through_the_outbox(harness: Harness) -> None:  # noqa: F811
    with harness.sessions.begin() as session:
        session.get_one(Lot, harness.lot_id).early_exit_policy = "pro_rata"
    with LocalInbox() as inbox:
        worker = _worker(harness, inbox)
        booking_id = harness.book(hours=4, starts_in=timedelta(minutes=1))
        ref = harness.charge_ref(booking_id)
        harness.provider.complete(ref)
        with harness.sessions.begin() as session:
            booking = session.get_one(Booking, booking_id)
            booking.arrived_at = booking.start_time
            left = booking.start_time + timedelta(hours=1)  # reported when it happened
            outcome = record_exit(session, booking, at=left, now=left)
            credit = outcome.credit_cents
        assert credit > 0
        # the request path only wrote rows: the provider has not been asked yet
        assert harness.provider.payments[ref].refunded == 0
        worker.run_once()
        assert harness.provider.payments[ref].refunded == credit
        with harness.sessions() as session:
            refund = session.scalars(select(Payment).where(Payment.kind == "refund")).one()
        assert (refund.amount_cents, refund.status) == (credit, "refunded")
        assert refund.idempotency_key == f"{booking_id}:refund:early-exit"
        worker.run_once()
        wait_for(lambda: len(inbox.messages) == 2, what="confirmation and refund emails")
        subjects = sorted(m["X-ParkGate-Template"] for m in inbox.messages)
        assert subjects == ["payment_confirmed", "refund"]


def test_through_the_real_app(sqlite_url: str) -> None:
    """Same journey over HTTP against ``cloud_api.app.create_app``, which mounts the router."""
    import httpx

    from cloud_api.app import create_app
    from cloud_api.payments import InProcessTransport, LocalProvider
    from cloud_api.seed import add_lot, add_user
    from cloud_api.settings import Settings

    secret = "whsec_e2e_app"
    provider = LocalProvider(webhook_secret=secret, webhook_url="/payments/webhook")
    app = create_app(
        Settings(database_url=sqlite_url, hold_sweep_seconds=0, webhook_secret=secret),
        payment_provider=provider,
    )
    sessions = app.state.sessions
    with sessions.begin() as session:
        lot_id = add_lot(session, "Harbour", {"car": 1}).id
        token = add_user(session, "ana@example.com", name="Ana").token
    start = utcnow() + timedelta(hours=1)
    with (
        LocalInbox() as inbox,
        httpx.Client(transport=InProcessTransport(app), base_url="http://cloud.test") as client,
    ):
        provider.use_http_client(client)
        mailer = SmtpMailer(SmtpSettings(inbox.host, inbox.port, "noreply@parkgate.test"))
        worker = OutboxWorker(sessions, outbox_handlers(mailer=mailer, provider=provider))
        created = client.post(
            "/bookings",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "parking_lot_id": lot_id,
                "vehicle_plate": "HB 42 XY",
                "vehicle_type": "car",
                "start_time": start.isoformat(),
                "end_time": (start + timedelta(hours=2)).isoformat(),
            },
        )
        assert created.status_code == 201, created.text
        booking_id = created.json()["booking_id"]
        worker.run_once()
        with sessions() as session:
            ref = session.scalars(
                select(Payment.provider_ref).where(Payment.booking_id == booking_id)
            ).one()
        assert provider.complete(ref).json()["result"] == "confirmed"
        shown = client.get(f"/bookings/{booking_id}", headers={"Authorization": f"Bearer {token}"})
        assert shown.json()["status"] == "confirmed"
        worker.run_once()
        wait_for(lambda: inbox.messages, what="the confirmation email")
        assert inbox.messages[0]["Subject"] == f"Booking {booking_id} confirmed"
    app.state.engine.dispose()
