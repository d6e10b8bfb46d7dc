"""Customer email: templates, the SMTP sender, and the outbox entry points.

Nothing here sends on a request path: request handlers call :func:`enqueue_email` inside their
transaction, and the outbox worker (:mod:`cloud_api.outbox`) calls :meth:`SmtpMailer.send`
later, with retries, backoff and a dead letter.

Errors::

    MailError
    ├── MailUnavailable (also RetryableError, ConnectionError) — server down, timeout, 4xx
    └── MailRejected (also PermanentError) — the server refused for good (5xx)
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any, Protocol

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from cloud_api.access_codes import qr_svg
from cloud_api.db import Base
from cloud_api.models import Booking, BookingStatus, Lot, OutboxMessage, User, UTCDateTime
from cloud_api.outbox import Handler, OutboxItem, PermanentError, RetryableError, enqueue

__all__ = [
    "EMAIL_KIND",
    "TEMPLATES",
    "BookingReminder",
    "MailError",
    "MailRejected",
    "MailUnavailable",
    "Mailer",
    "SmtpMailer",
    "SmtpSettings",
    "booking_email",
    "compose",
    "email_handler",
    "email_payload",
    "enqueue_booking_email",
    "outbox_message_id",
    "schedule_reminders",
]

log = logging.getLogger(__name__)

EMAIL_KIND = "notify.email"
"""Outbox ``kind`` of every customer email (payload ``{template, to, booking_id, ...}``)."""


class MailError(Exception):
    """Root of the mail errors."""


class MailUnavailable(MailError, RetryableError, ConnectionError):
    """The message may be sent later: the server is down, timed out, or answered 4xx."""


class MailRejected(MailError, PermanentError):
    """The server refused the message permanently (5xx)."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 10.0


_SUBJECTS = {
    "payment_confirmed": "Booking {booking_id} confirmed",
    "payment_failed": "Payment failed for booking {booking_id}",
    "reminder": "Your parking at {lot} ends at {ends_at}",
    "refund": "Refund of {amount} {currency} for booking {booking_id}",
    "overstay": "Overstay charge of {amount} {currency} for booking {booking_id}",
}

_BODIES = {
    "payment_confirmed": (
        "Hello {name},\n\nyour payment of {amount} {currency} was received and booking "
        "{booking_id} is confirmed.\nLot: {lot}\nPlate: {plate}\nFrom {starts_at} to {ends_at}.\n\n"
        "The gate opens for your plate during the booked window.{access_code_text}\n"
    ),
    "payment_failed": (
        "Hello {name},\n\nthe payment for booking {booking_id} failed, so the booking was "
        "released and the space is free again.\nPlease book again with another payment method.\n"
    ),
    "reminder": (
        "Hello {name},\n\nyour booking {booking_id} at {lot} for {plate} ends at {ends_at}.\n"
        "Leave before then or extend the booking to avoid an overstay charge.\n"
    ),
    "refund": (
        "Hello {name},\n\nyou left {lot} early, so {amount} {currency} for the unused time of "
        "booking {booking_id} is being refunded to your payment method.\n"
    ),
    "overstay": (
        "Hello {name},\n\nyou stayed past the end of booking {booking_id} at {lot}; "
        "{amount} {currency} is due for the extra time.\n"
    ),
}

TEMPLATES = frozenset(_SUBJECTS)


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "-"


def email_payload(template: str, *, to: str, **context: Any) -> dict[str, Any]:
    """The outbox payload for one email; ``context`` must be JSON-serialisable."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown email template {template!r}")
    return {**context, "template": template, "to": to}


def compose(
    payload: Mapping[str, Any], *, sender: str, message_id: str | None = None
) -> EmailMessage:
    """Build the message for an outbox payload made by :func:`email_payload`; ``message_id``
    (default: a random one) is the outbox's :func:`outbox_message_id`."""
    template = payload["template"]
    context = _Blank({"name": "customer", **payload})
    if "amount" not in context and isinstance(payload.get("amount_cents"), int):
        context["amount"] = f"{payload['amount_cents'] / 100:.2f}"
    message = EmailMessage()
    message["From"] = sender
    message["To"] = payload["to"]
    message["Subject"] = _SUBJECTS[template].format_map(context)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id or make_msgid(domain="parkgate")
    message["X-ParkGate-Template"] = template
    if "booking_id" in context:
        message["X-ParkGate-Booking"] = str(context["booking_id"])
    code = payload.get("access_code")
    context["access_code_text"] = _code_text(code) if isinstance(code, str) else ""
    message.set_content(_BODIES[template].format_map(context))
    if isinstance(code, str):
        message.add_alternative(_code_html(code), subtype="html")
    return message


def _code_text(code: str) -> str:
    return (
        "\nIf the camera cannot read your plate, show the gate this access code as a QR code "
        "(the app shows it) or type it on the lane's code page:\n"
        f"{code}\n"
    )


def _code_html(code: str) -> str:
    """The HTML part: the access code as text and as an inline SVG QR code."""
    return (
        "<html><body><p>Your gate access code (show it to the lane camera if your plate is "
        f"not recognised):</p><p><code>{html.escape(code)}</code></p>"
        f'<div style="width:240px">{qr_svg(code)}</div></body></html>'
    )


class SmtpMailer:
    """Sends one message per connection (the worker sends few; no idle connection to babysit)."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    @property
    def sender(self) -> str:
        return self.settings.sender

    def send(self, message: EmailMessage) -> None:
        s = self.settings
        try:
            with smtplib.SMTP(s.host, s.port, timeout=s.timeout) as smtp:
                if s.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if s.username:
                    smtp.login(s.username, s.password or "")
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if all(400 <= code < 500 for code in codes):
                raise MailUnavailable(f"recipients deferred: {exc.recipients}") from exc
            raise MailRejected(f"recipients refused: {exc.recipients}") from exc
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                raise MailUnavailable(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
            raise MailRejected(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise MailUnavailable(f"SMTP {s.host}:{s.port} unavailable: {exc}") from exc
        log.info("sent %s", message["X-ParkGate-Template"])  # no addresses above debug (privacy)
        log.debug("sent %s to %s", message["X-ParkGate-Template"], message["To"])


class Mailer(Protocol):
    @property
    def sender(self) -> str: ...

    def send(self, message: EmailMessage) -> None: ...


def email_handler(mailer: Mailer) -> Handler:
    """Outbox handler for :data:`EMAIL_KIND`; the mail errors say retry or give up."""

    def send_email(sessions: sessionmaker[Session], item: OutboxItem) -> None:
        payload = dict(item.payload)
        booking_id = payload.get("booking_id")
        if isinstance(booking_id, str) and (not payload.get("to") or "lot" not in payload):
            with sessions() as session:
                _fill_from_booking(session, booking_id, payload)
        if not payload.get("to"):
            raise LookupError(f"email {item.id} has no recipient")
        message_id = outbox_message_id(item, mailer.sender)
        mailer.send(compose(payload, sender=mailer.sender, message_id=message_id))

    return send_email


def outbox_message_id(item: OutboxItem, sender: str) -> str:
    """The email's ``Message-ID``, the same on every attempt at one outbox message: should a
    retry send a copy the server had taken after all (the connection lost before its answer),
    the recipient's mail system sees the same message twice, not two messages. The payload's
    digest keeps two installs' outbox ids apart; the domain is the sender's."""
    body = json.dumps(item.payload, sort_keys=True, default=str).encode()
    digest = hashlib.sha256(body).hexdigest()[:16]
    domain = parseaddr(sender)[1].rpartition("@")[2] or "parkgate"
    return f"<outbox.{item.id}.{digest}@{domain}>"


def _fill_from_booking(session: Session, booking_id: str, payload: dict[str, Any]) -> None:
    booking = session.get(Booking, booking_id)
    if booking is None:
        return
    if not payload.get("to"):
        user = session.get(User, booking.user_id)
        payload["to"] = user.email if user else None
    if "lot" not in payload:
        lot = session.get(Lot, booking.lot_id)
        payload["lot"] = lot.name if lot else booking.lot_id


def booking_email(
    session: Session, booking: Booking, template: str, **extra: Any
) -> dict[str, Any]:
    """Payload for ``template`` about ``booking``: the customer's address, the lot's name."""
    user = session.get(User, booking.user_id)
    lot = session.get(Lot, booking.lot_id)
    if user is None:
        raise LookupError(f"booking {booking.id} has no user")
    context: dict[str, Any] = {
        "booking_id": booking.id,
        "name": user.name,
        "lot": lot.name if lot else booking.lot_id,
        "plate": booking.plate,
        "starts_at": booking.start_time.isoformat(timespec="minutes"),
        "ends_at": booking.end_time.isoformat(timespec="minutes"),
        "amount_cents": booking.price_cents,
        "currency": booking.currency,
    }
    context.update(extra)
    return email_payload(template, to=user.email, **context)


def enqueue_booking_email(
    session: Session, booking: Booking, template: str, **extra: Any
) -> OutboxMessage:
    """Write the email to the outbox in the caller's transaction (never sent on a request path)."""
    return enqueue(session, EMAIL_KIND, booking_email(session, booking, template, **extra))


class BookingReminder(Base):
    """One row per booking whose "ends soon" reminder was enqueued: makes it exactly once."""

    __tablename__ = "booking_reminders"

    booking_id: Mapped[str] = mapped_column(
        String(24), ForeignKey("bookings.id", ondelete="CASCADE"), primary_key=True
    )
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime)


def schedule_reminders(session: Session, now: datetime, *, lead: timedelta) -> int:
    """Enqueue the reminder for confirmed bookings ending within ``lead`` of ``now``, once each.

    The reminder row and the outbox message are written in the caller's transaction; a second
    scheduler racing on the same booking fails on the primary key and rolls back.
    """
    already = select(BookingReminder.booking_id)
    due = session.scalars(
        select(Booking)
        .where(
            Booking.status == BookingStatus.CONFIRMED.value,
            Booking.end_time > now,
            Booking.end_time <= now + lead,
            Booking.exited_at.is_(None),
            Booking.id.not_in(already),
        )
        .order_by(Booking.end_time)
    ).all()
    for booking in due:
        session.add(BookingReminder(booking_id=booking.id, enqueued_at=now))
        enqueue_booking_email(session, booking, "reminder")
    if due:
        log.info("enqueued %s end-of-booking reminders", len(due))
    return len(due)
