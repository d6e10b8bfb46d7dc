"""Templates and the SMTP sender against a real local SMTP server (aiosmtpd)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloud_api.notifications import (
    TEMPLATES,
    MailUnavailable,
    SmtpMailer,
    SmtpSettings,
    compose,
    email_payload,
)
from devservices import LocalInbox, free_port, wait_for

SENDER = "ParkGate <noreply@parkgate.test>"


@pytest.fixture
def inbox() -> Iterator[LocalInbox]:
    with LocalInbox() as box:
        yield box


def test_every_template_renders_with_its_context() -> None:
    for template in sorted(TEMPLATES):
        payload = email_payload(
            template,
            to="ana@example.com",
            name="Ana",
            booking_id="bk_7",
            lot="Central",
            plate="AB123CD",
            starts_at="10:00",
            ends_at="12:00",
            amount="4.50",
            currency="EUR",
        )
        message = compose(payload, sender=SENDER)
        assert message["To"] == "ana@example.com"
        assert message["X-ParkGate-Template"] == template
        assert message["X-ParkGate-Booking"] == "bk_7"
        assert "{" not in message["Subject"] and "{" not in message.get_content()


def test_missing_context_does_not_break_rendering() -> None:
    message = compose(email_payload("reminder", to="a@b.c"), sender=SENDER)
    assert message["Subject"] == "Your parking at - ends at -"


def test_unknown_template_is_refused() -> None:
    with pytest.raises(ValueError):
        email_payload("spam", to="a@b.c")


def test_sends_to_a_real_smtp_server(inbox: LocalInbox) -> None:
    mailer = SmtpMailer(SmtpSettings(host=inbox.host, port=inbox.port, sender=SENDER))
    payload = email_payload(
        "payment_confirmed", to="ana@example.com", booking_id="bk_1", amount="3.00"
    )
    mailer.send(compose(payload, sender=mailer.sender))
    wait_for(lambda: inbox.messages, what="the message to arrive")
    (received,) = inbox.messages
    assert received["Subject"] == "Booking bk_1 confirmed"
    assert received["To"] == "ana@example.com"
    assert "3.00" in received.get_content()


def test_server_down_is_unavailable_then_recovers() -> None:
    port = free_port()
    mailer = SmtpMailer(SmtpSettings(host="127.0.0.1", port=port, sender=SENDER, timeout=2))
    message = compose(email_payload("refund", to="a@b.c", booking_id="bk_2"), sender=SENDER)
    with pytest.raises(MailUnavailable):
        mailer.send(message)
    with LocalInbox(port=port) as box:
        mailer.send(message)
        wait_for(lambda: box.messages, what="the message after recovery")
    assert isinstance(MailUnavailable("x"), ConnectionError)
