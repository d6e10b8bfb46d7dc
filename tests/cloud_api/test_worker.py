"""The outbox worker: retries with backoff, dead letters, recovery, reminders exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.daemons import AT_MOST_ONCE_KINDS, outbox_handlers
from cloud_api.models import Booking, OutboxMessage, Payment, utcnow
from cloud_api.notifications import (
    EMAIL_KIND,
    SmtpMailer,
    SmtpSettings,
    email_payload,
    outbox_message_id,
    schedule_reminders,
)
from cloud_api.outbox import DeadLetter, OutboxItem, OutboxWorker, RetryPolicy, enqueue
from cloud_api.payments.refunds import refund_payment
from devservices import LocalInbox, free_port, wait_for
from tests.cloud_api.test_webhooks import Harness, harness  # noqa: F401  (fixture)

SENDER = "ParkGate <noreply@parkgate.test>"


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.mark.parametrize(
    ("attempts", "seconds"), [(1, 5), (2, 10), (3, 20), (4, 40), (10, 2560), (12, 3600), (50, 3600)]
)
def test_backoff_schedule_is_exponential_and_capped(attempts: int, seconds: int) -> None:
    assert RetryPolicy().delay(attempts) == timedelta(seconds=seconds)


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def inbox(smtp_port: int) -> Iterator[LocalInbox]:
    box = LocalInbox(port=smtp_port)  # not started: each test decides when SMTP is up
    yield box
    box.stop()


def _worker(
    sessions: sessionmaker[Session], port: int, clock: Clock, **extra: object
) -> OutboxWorker:
    mailer = SmtpMailer(SmtpSettings("127.0.0.1", port, SENDER, timeout=2))
    policy = RetryPolicy(max_attempts=3, base_delay=timedelta(seconds=10))
    return OutboxWorker(
        sessions, outbox_handlers(mailer=mailer), policy=policy, clock=clock, **extra
    )  # type: ignore[arg-type]


def _email(sessions: sessionmaker[Session], to: str, clock: Clock) -> int:
    payload = email_payload("refund", to=to, booking_id="bk_x")
    with sessions.begin() as session:
        message = enqueue(session, EMAIL_KIND, payload, available_at=clock.now)
        session.flush()
        return message.id


def _message(sessions: sessionmaker[Session], message_id: int) -> OutboxMessage:
    with sessions() as session:
        return session.get_one(OutboxMessage, message_id)


def test_smtp_down_retries_with_backoff_then_dead_letters(
    session_factory: sessionmaker[Session], smtp_port: int, inbox: LocalInbox
) -> None:
    clock = Clock()
    worker = _worker(session_factory, smtp_port, clock)
    message_id = _email(session_factory, "ana@example.com", clock)
    start = clock.now

    assert worker.run_once() == 1
    first = _message(session_factory, message_id)
    assert (first.attempts, first.dead, first.sent_at) == (1, False, None)
    assert first.available_at == start + timedelta(seconds=10)
    assert "MailUnavailable" in (first.last_error or "")
    assert worker.run_once() == 0  # not due yet: no busy retry loop

    clock.advance(timedelta(seconds=10))
    assert worker.run_once() == 1
    second = _message(session_factory, message_id)
    assert second.attempts == 2
    assert second.available_at == clock.now + timedelta(seconds=20)

    clock.advance(timedelta(seconds=20))
    assert worker.run_once() == 1
    dead = _message(session_factory, message_id)
    assert (dead.attempts, dead.dead, dead.sent_at) == (3, True, None)
    with session_factory() as session:
        (letter,) = session.scalars(select(DeadLetter)).all()
    assert (letter.outbox_id, letter.kind, letter.attempts) == (message_id, EMAIL_KIND, 3)
    assert letter.payload["to"] == "ana@example.com"

    # SMTP comes back: the dead letter stays dead, new mail flows, nothing is sent twice
    inbox.start()
    clock.advance(timedelta(hours=2))
    new_id = _email(session_factory, "bo@example.com", clock)
    assert worker.run_once() == 1
    wait_for(lambda: inbox.messages, what="mail after recovery")
    assert [m["To"] for m in inbox.messages] == ["bo@example.com"]
    assert _message(session_factory, new_id).sent_at == clock.now


def test_recovers_when_smtp_comes_back_before_giving_up(
    session_factory: sessionmaker[Session], smtp_port: int, inbox: LocalInbox
) -> None:
    clock = Clock()
    worker = _worker(session_factory, smtp_port, clock)
    message_id = _email(session_factory, "ana@example.com", clock)
    worker.run_once()
    assert _message(session_factory, message_id).attempts == 1
    inbox.start()
    clock.advance(timedelta(seconds=10))
    assert worker.run_once() == 1
    wait_for(lambda: inbox.messages, what="the retried message")
    sent = _message(session_factory, message_id)
    assert (sent.attempts, sent.dead, sent.sent_at) == (2, False, clock.now)
    assert len(inbox.messages) == 1
    assert worker.run_once() == 0


def test_malformed_message_goes_straight_to_dead_letter(
    session_factory: sessionmaker[Session], smtp_port: int
) -> None:
    clock = Clock()
    clock.advance(timedelta(seconds=1))
    worker = _worker(session_factory, smtp_port, clock)
    with session_factory.begin() as session:
        enqueue(session, EMAIL_KIND, {"template": "nope", "to": "a@b.c"})
        enqueue(session, EMAIL_KIND, {"template": "refund"})  # no recipient, no booking
    assert worker.run_once() == 2
    with session_factory() as session:
        letters = session.scalars(select(DeadLetter)).all()
    assert [letter.attempts for letter in letters] == [1, 1]


def test_kinds_without_a_handler_are_left_for_their_relay(
    session_factory: sessionmaker[Session], smtp_port: int
) -> None:
    clock = Clock()
    worker = _worker(session_factory, smtp_port, clock)
    with session_factory.begin() as session:
        enqueue(session, "mqtt.lot_change", {"lot_id": 1, "seq": 1}, available_at=clock.now)
    assert worker.run_once() == 0
    with session_factory() as session:
        (message,) = session.scalars(select(OutboxMessage)).all()
    assert (message.attempts, message.sent_at, message.dead) == (0, None, False)


def test_provider_outage_is_retried_with_the_same_idempotency_key(harness: Harness) -> None:  # noqa: F811
    booking = harness.book()
    clock = Clock()
    worker = OutboxWorker(
        harness.sessions,
        outbox_handlers(provider=harness.provider),
        policy=RetryPolicy(base_delay=timedelta(seconds=1)),
        clock=clock,
    )
    harness.provider.fail_calls(1)
    assert worker.run_once() == 1
    with harness.sessions() as session:
        (message,) = session.scalars(select(OutboxMessage)).all()
    assert (message.attempts, message.sent_at) == (1, None)
    assert "ProviderUnavailable" in (message.last_error or "")
    clock.advance(timedelta(seconds=1))
    assert worker.run_once() == 1
    ref = harness.charge_ref(booking)
    assert list(harness.provider.payments) == [ref]


def test_a_rejected_payment_is_dead_lettered_at_once(harness: Harness) -> None:  # noqa: F811
    booking_id = harness.book()
    harness.provider.complete(harness.charge_ref(booking_id))
    with harness.sessions.begin() as session:
        charge = session.scalars(select(Payment).where(Payment.booking_id == booking_id)).one()
        session.execute(delete(OutboxMessage))  # only the refund below is left to do
        # a refund of more than the charge took (past the cap): the local provider refuses it
        refund_payment(session, charge, charge.amount_cents + 1, "too-much", whole=True)
    worker = OutboxWorker(harness.sessions, outbox_handlers(provider=harness.provider))
    assert worker.run_once() == 1
    with harness.sessions() as session:
        (message,) = session.scalars(select(OutboxMessage)).all()
        (letter,) = session.scalars(select(DeadLetter)).all()
    assert (message.attempts, message.dead, message.sent_at) == (1, True, None)
    assert letter.last_error.startswith("PermanentError: PaymentRejected: refund of")


def test_reminder_is_enqueued_and_sent_exactly_once(
    harness: Harness,  # noqa: F811
    smtp_port: int,
    inbox: LocalInbox,
) -> None:
    inbox.start()
    booking_id = harness.book(hours=1, starts_in=timedelta(minutes=1))
    harness.provider.complete(harness.charge_ref(booking_id))
    with harness.sessions() as session:
        end = session.get_one(Booking, booking_id).end_time
    clock = Clock()
    worker = _worker(
        harness.sessions,
        smtp_port,
        clock,
        periodic=lambda session, now: schedule_reminders(session, now, lead=timedelta(minutes=15)),
    )
    clock.now = end - timedelta(minutes=20)  # too early for the reminder
    worker.run_once()
    wait_for(lambda: len(inbox.messages) == 1, what="the confirmation email")
    for minutes in (14, 10, 5, 1):
        clock.now = end - timedelta(minutes=minutes)
        worker.run_once()
    with harness.sessions.begin() as session:
        assert schedule_reminders(session, clock.now, lead=timedelta(minutes=15)) == 0
    wait_for(lambda: len(inbox.messages) == 2, what="the reminder")
    templates = [m["X-ParkGate-Template"] for m in inbox.messages]
    assert templates == ["payment_confirmed", "reminder"]
    reminder = inbox.messages[1]
    assert reminder["To"] == "ana@example.com"
    assert reminder["Subject"].startswith("Your parking at Central ends at")


class WorkerKilled(BaseException):
    """Stands in for a SIGKILL: nothing after it runs (not an error any handler catches)."""


class KilledAfterSending:
    """A mailer that sends through ``mailer`` and then "dies" before the worker records it."""

    def __init__(self, mailer: SmtpMailer) -> None:
        self.mailer = mailer

    @property
    def sender(self) -> str:
        return self.mailer.sender

    def send(self, message: EmailMessage) -> None:
        self.mailer.send(message)
        raise WorkerKilled


def test_an_email_a_killed_worker_may_have_sent_is_dead_lettered_not_sent_again(
    session_factory: sessionmaker[Session], smtp_port: int, inbox: LocalInbox
) -> None:
    """At most once: the claim commits ``handling_since`` before sending; the next worker to
    find it set cannot know whether the email went out and dead-letters it."""
    inbox.start()
    clock = Clock()
    mailer = SmtpMailer(SmtpSettings("127.0.0.1", smtp_port, SENDER, timeout=2))
    lease = timedelta(seconds=30)
    killed = OutboxWorker(
        session_factory,
        outbox_handlers(mailer=KilledAfterSending(mailer)),
        policy=RetryPolicy(lease=lease),
        clock=clock,
        at_most_once=AT_MOST_ONCE_KINDS,
    )
    message_id = _email(session_factory, "ana@example.com", clock)
    with pytest.raises(WorkerKilled):
        killed.run_once()
    wait_for(lambda: len(inbox.messages) == 1, what="the email the killed worker sent")
    assert _message(session_factory, message_id).handling_since == clock.now

    clock.advance(lease)  # the claim lapses; a new worker process takes over
    restarted = OutboxWorker(
        session_factory,
        outbox_handlers(mailer=mailer),
        policy=RetryPolicy(lease=lease),
        clock=clock,
        at_most_once=AT_MOST_ONCE_KINDS,
    )
    assert restarted.run_once() == 0
    message = _message(session_factory, message_id)
    assert (message.dead, message.sent_at, message.handling_since) == (True, None, None)
    with session_factory() as session:
        (letter,) = session.scalars(select(DeadLetter)).all()
    assert letter.outbox_id == message_id
    assert letter.last_error.startswith("OutcomeUnknown: an attempt started at")
    assert len(inbox.messages) == 1
    sent = inbox.messages[0]["Message-ID"]
    assert sent.startswith(f"<outbox.{message_id}.") and sent.endswith("@parkgate.test>")


def test_a_kind_not_at_most_once_is_tried_again_after_a_killed_attempt(
    session_factory: sessionmaker[Session],
) -> None:
    """Payment calls carry their idempotency key: an attempt left in doubt is simply retried."""
    clock = Clock()
    calls: list[int] = []

    def handler(_sessions: sessionmaker[Session], item: OutboxItem) -> None:
        calls.append(item.id)
        if len(calls) == 1:
            raise WorkerKilled

    def worker() -> OutboxWorker:
        return OutboxWorker(
            session_factory,
            {"payment.test": handler},
            policy=RetryPolicy(lease=timedelta(seconds=30)),
            clock=clock,
            at_most_once=AT_MOST_ONCE_KINDS,
        )

    with session_factory.begin() as session:
        message = enqueue(session, "payment.test", {"n": 1}, available_at=clock.now)
        session.flush()
        message_id = message.id
    with pytest.raises(WorkerKilled):
        worker().run_once()
    clock.advance(timedelta(seconds=30))
    assert worker().run_once() == 1
    done = _message(session_factory, message_id)
    assert (done.sent_at, done.dead, done.handling_since) == (clock.now, False, None)
    assert calls == [message_id, message_id]


def test_every_attempt_at_one_email_has_the_same_message_id(
    session_factory: sessionmaker[Session], smtp_port: int, inbox: LocalInbox
) -> None:
    clock = Clock()
    worker = _worker(session_factory, smtp_port, clock)
    first = _email(session_factory, "ana@example.com", clock)
    second = _email(session_factory, "ana@example.com", clock)
    worker.run_once()  # SMTP down: both fail once, nothing in doubt
    assert _message(session_factory, first).handling_since is None
    inbox.start()
    clock.advance(timedelta(seconds=10))
    assert worker.run_once() == 2
    wait_for(lambda: len(inbox.messages) == 2, what="both emails")
    with session_factory() as session:
        items = [
            OutboxItem(m.id, m.kind, m.payload, m.attempts)
            for m in (session.get_one(OutboxMessage, i) for i in (first, second))
        ]
    ids = [m["Message-ID"] for m in inbox.messages]
    assert ids == [outbox_message_id(item, SENDER) for item in items]
    assert ids[0] != ids[1]
