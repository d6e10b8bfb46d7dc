"""What the daemons build from settings: webhook secret, payment provider, outbox worker.

``cloud-api serve`` and ``cloud-api worker`` both come through here, so the API (verifying
webhooks) and the worker (calling the provider, sending mail) agree on the provider and secret.

Webhook secret: ``PARKGATE_WEBHOOK_SECRET``. With the Stripe provider it is required. With the
local provider and a SQLite file database, an unset secret is generated once per install and kept
next to the database (``<db>.webhook-secret``, mode 0600), so every process of the install reads
the same one; with another database it must be given (``serve`` alone generates one per run and
hands it to its own processes).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.settings import Settings

__all__ = [
    "ConfigError",
    "build_outbox_worker",
    "payment_provider",
    "resolve_webhook_secret",
    "smtp_settings",
    "start_worker_thread",
]

log = logging.getLogger(__name__)
SECRET_ENV = "PARKGATE_WEBHOOK_SECRET"


class ConfigError(ValueError):
    """Settings that cannot work; the message names the environment variable to set."""


def _secret_file(database_url: str) -> Path | None:
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return None
    return Path(f"{url.database}.webhook-secret")


def resolve_webhook_secret(settings: Settings, *, generate: bool = True) -> str:
    """The configured secret, or the local install's stored one (created when missing)."""
    if settings.webhook_secret:
        return settings.webhook_secret
    if settings.payment_provider != "local":
        raise ConfigError(
            f"{SECRET_ENV} is required with PARKGATE_PAYMENT_PROVIDER={settings.payment_provider}"
            " (the provider's webhook signing secret, e.g. whsec_...)"
        )
    path = _secret_file(settings.database_url)
    if path is None:
        if not generate:
            raise ConfigError(f"{SECRET_ENV} is required unless the database is a SQLite file")
        log.warning("%s unset: using a random webhook secret for this run only", SECRET_ENV)
        return "whsec_" + secrets.token_urlsafe(24)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write("whsec_" + secrets.token_urlsafe(24) + "\n")
    log.info("generated the local webhook secret in %s", path)
    return path.read_text().strip()


def payment_provider(settings: Settings, secret: str) -> Any:
    """``PARKGATE_PAYMENT_PROVIDER``: ``local`` (demo, tests) or ``stripe``."""
    if settings.payment_provider == "stripe":
        if not settings.stripe_api_key:
            raise ConfigError("PARKGATE_STRIPE_API_KEY is required with the stripe provider")
        from cloud_api.payments.stripe_provider import StripeProvider, build_stripe_client

        return StripeProvider(build_stripe_client(settings.stripe_api_key), webhook_secret=secret)
    if settings.payment_provider != "local":
        raise ConfigError(
            f"PARKGATE_PAYMENT_PROVIDER must be local or stripe, not {settings.payment_provider!r}"
        )
    from cloud_api.payments.local_provider import LocalProvider

    autopay = os.environ.get("PARKGATE_LOCAL_AUTOPAY_SECONDS", "").strip()
    try:
        autopay_seconds = float(autopay) if autopay else None
    except ValueError:
        raise ConfigError(
            f"PARKGATE_LOCAL_AUTOPAY_SECONDS must be a number of seconds, not {autopay!r}"
        ) from None
    return LocalProvider(
        webhook_secret=secret,
        webhook_url=settings.public_url.rstrip("/") + "/payments/webhook",
        autopay_seconds=autopay_seconds,  # the demo's customer pays by itself
    )


def smtp_settings(env: dict[str, str] | None = None) -> Any:
    """``PARKGATE_SMTP_HOST`` (unset: no email handler), ``_PORT``, ``_SENDER``, ``_USERNAME``,
    ``_PASSWORD``, ``_STARTTLS``."""
    from cloud_api.notifications import SmtpSettings

    env = dict(os.environ) if env is None else env
    host = env.get("PARKGATE_SMTP_HOST")
    if not host:
        return None
    return SmtpSettings(
        host=host,
        port=int(env.get("PARKGATE_SMTP_PORT", "25")),
        sender=env.get("PARKGATE_SMTP_SENDER", "parkgate@localhost"),
        username=env.get("PARKGATE_SMTP_USERNAME") or None,
        password=env.get("PARKGATE_SMTP_PASSWORD") or None,
        starttls=env.get("PARKGATE_SMTP_STARTTLS", "0") in ("1", "true", "yes"),
    )


def build_outbox_worker(settings: Settings, sessions: sessionmaker[Session]) -> Any:
    """The outbox worker with the email handler (if SMTP is set), the payment handlers and the
    end-of-booking reminders (``PARKGATE_REMINDER_LEAD_MINUTES``)."""
    from cloud_api.notifications import SmtpMailer, schedule_reminders
    from cloud_api.worker import OutboxWorker, build_handlers

    smtp = smtp_settings()
    if smtp is None:
        log.warning("PARKGATE_SMTP_HOST unset: emails stay in the outbox")
    provider = payment_provider(settings, resolve_webhook_secret(settings, generate=False))
    lead = timedelta(minutes=settings.reminder_lead_minutes)
    return OutboxWorker(
        sessions,
        build_handlers(mailer=SmtpMailer(smtp) if smtp else None, provider=provider),
        periodic=lambda session, now: schedule_reminders(session, now, lead=lead),
    )


def start_worker_thread(settings: Settings, stop: threading.Event) -> threading.Thread:
    """Run the outbox worker in a daemon thread of this process (``serve --with-worker``)."""
    from cloud_api.db import make_engine, make_sessionmaker

    worker = build_outbox_worker(settings, make_sessionmaker(make_engine(settings.database_url)))
    thread = threading.Thread(
        target=worker.run_forever, args=(stop,), name="outbox-worker", daemon=True
    )
    thread.start()
    return thread
