"""Customer email: templates, the SMTP sender, and the outbox entry points.

Nothing here sends on a request path: request handlers call :func:`enqueue_email` inside their
transaction, and the worker (:mod:`cloud_api.worker`) calls :meth:`SmtpMailer.send` later, with
retries, backoff and a dead letter.

Errors::

    MailError
    ├── MailUnavailable (also ConnectionError) — server down, timeout, 4xx; retry later
    └── MailRejected — the server refused for good (5xx); do not retry
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

__all__ = [
    "EMAIL_KIND",
    "TEMPLATES",
    "MailError",
    "MailRejected",
    "MailUnavailable",
    "SmtpMailer",
    "SmtpSettings",
    "compose",
    "email_payload",
]

log = logging.getLogger(__name__)

EMAIL_KIND = "notification.email"
"""Outbox ``kind`` of every customer email."""


class MailError(Exception):
    """Root of the mail errors."""


class MailUnavailable(MailError, ConnectionError):
    """The message may be sent later: the server is down, timed out, or answered 4xx."""


class MailRejected(MailError):
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
    "reminder": "Your parking at {lot} ends at {end}",
    "refund": "Refund of {amount} {currency} for booking {booking_id}",
    "overstay": "Overstay charge of {amount} {currency} for booking {booking_id}",
}

_BODIES = {
    "payment_confirmed": (
        "Hello {name},\n\nyour payment of {amount} {currency} was received and booking "
        "{booking_id} is confirmed.\nLot: {lot}\nPlate: {plate}\nFrom {start} to {end}.\n\n"
        "The gate opens for your plate during the booked window.\n"
    ),
    "payment_failed": (
        "Hello {name},\n\nthe payment for booking {booking_id} failed, so the booking was "
        "released and the space is free again.\nPlease book again with another payment method.\n"
    ),
    "reminder": (
        "Hello {name},\n\nyour booking {booking_id} at {lot} for {plate} ends at {end}.\n"
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
    return {"template": template, "to": to, "context": context}


def compose(payload: Mapping[str, Any], *, sender: str) -> EmailMessage:
    """Build the message for an outbox payload made by :func:`email_payload`."""
    template = payload["template"]
    context = _Blank({"name": "customer", **payload.get("context", {})})
    message = EmailMessage()
    message["From"] = sender
    message["To"] = payload["to"]
    message["Subject"] = _SUBJECTS[template].format_map(context)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="parkgate")
    message["X-ParkGate-Template"] = template
    if "booking_id" in context:
        message["X-ParkGate-Booking"] = str(context["booking_id"])
    message.set_content(_BODIES[template].format_map(context))
    return message


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
        log.info("sent %s to %s", message["X-ParkGate-Template"], message["To"])
