"""Composition roots of the cloud daemons: each puts one process together from its settings.

- :func:`run_api` — ``cloud-api serve``: migrations, the webhook secret (once, for every worker
  process), uvicorn worker processes each running :func:`build_api`, optionally the outbox worker
  in a thread;
- :func:`run_worker` — ``cloud-api worker``: the outbox worker with the email and payment
  handlers and the end-of-booking reminders (:func:`build_worker`);
- :func:`run_sync` — ``cloud-api sync``: the MQTT relay (cloud → lots) and the gate-event ingest.

The settings come validated from the command line (:func:`cloud_api.settings.load_settings`);
nothing below reads the environment.
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
from datetime import timedelta

from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from cloud_api.app import create_app
from cloud_api.db import make_engine, make_sessionmaker
from cloud_api.lot_sync import SyncService
from cloud_api.migrate import upgrade
from cloud_api.notifications import (
    EMAIL_KIND,
    Mailer,
    SmtpMailer,
    SmtpSettings,
    email_handler,
    schedule_reminders,
)
from cloud_api.outbox import Handler, OutboxWorker, RetryPolicy
from cloud_api.payments.checkout import PayLinks
from cloud_api.payments.configured import build_provider, resolve_webhook_secret
from cloud_api.payments.handlers import payment_handlers
from cloud_api.payments.provider import PaymentProvider
from cloud_api.serving import serve
from cloud_api.settings import Settings, SmtpConfig

__all__ = [
    "build_api",
    "build_worker",
    "outbox_handlers",
    "run_api",
    "run_sync",
    "run_worker",
    "start_worker_thread",
]

log = logging.getLogger(__name__)

AT_MOST_ONCE_KINDS = frozenset({EMAIL_KIND})
"""Outbox kinds never done twice: an attempt a crash left in doubt is dead-lettered, not retried
(an email cannot be taken back; the payment calls carry idempotency keys and are retried)."""


def build_api(settings: Settings) -> FastAPI:
    """The ASGI app of one API process (``settings.webhook_secret`` already resolved)."""
    provider = build_provider(settings, resolve_webhook_secret(settings, generate=False))
    return create_app(settings, payment_provider=provider)


def run_api(settings: Settings, *, host: str, port: int, workers: int, with_worker: bool) -> int:
    """Serve the API until SIGTERM or SIGINT; ``with_worker`` adds the outbox worker thread."""
    secret = resolve_webhook_secret(settings)  # once: every worker process uses the same
    settings = settings.model_copy(update={"webhook_secret": SecretStr(secret)})
    upgrade(settings.database_url)
    stop = threading.Event()
    if with_worker:
        start_worker_thread(settings, stop)
    app = functools.partial(build_api, settings)
    serve(app, host, port, workers, log_level="warning", access_log=False)
    stop.set()
    return 0


def outbox_handlers(
    *,
    mailer: Mailer | None = None,
    provider: PaymentProvider | None = None,
    links: PayLinks | None = None,
) -> dict[str, Handler]:
    """The outbox worker's handler table: email (with a mailer) and payments (with a provider;
    ``links``: the pay pages' public addresses, default the settings' default public URL)."""
    handlers: dict[str, Handler] = {}
    if mailer is not None:
        handlers[EMAIL_KIND] = email_handler(mailer)
    if provider is not None:
        handlers.update(payment_handlers(provider, links or PayLinks(Settings().public_url)))
    return handlers


def _mailer(smtp: SmtpConfig) -> SmtpMailer | None:
    if smtp.host is None:
        log.warning("PARKGATE_SMTP_HOST unset: emails stay in the outbox")
        return None
    password = smtp.password.get_secret_value() if smtp.password else None
    return SmtpMailer(
        SmtpSettings(
            host=smtp.host,
            port=smtp.port,
            sender=smtp.sender,
            username=smtp.username,
            password=password,
            starttls=smtp.starttls,
        )
    )


def build_worker(settings: Settings, sessions: sessionmaker[Session]) -> OutboxWorker:
    """The outbox worker with the email handler (if SMTP is set), the payment handlers and the
    end-of-booking reminders (``reminder_lead_minutes`` before the end)."""
    provider = build_provider(settings, resolve_webhook_secret(settings, generate=False))
    lead = timedelta(minutes=settings.reminder_lead_minutes)
    return OutboxWorker(
        sessions,
        outbox_handlers(
            mailer=_mailer(settings.smtp), provider=provider, links=PayLinks(settings.public_url)
        ),
        policy=RetryPolicy(lease=timedelta(seconds=settings.outbox_lease_seconds)),
        periodic=lambda session, now: schedule_reminders(session, now, lead=lead),
        at_most_once=AT_MOST_ONCE_KINDS,
    )


def start_worker_thread(settings: Settings, stop: threading.Event) -> threading.Thread:
    """Run the outbox worker in a daemon thread of this process (``serve --with-worker``)."""
    worker = build_worker(settings, make_sessionmaker(make_engine(settings.database_url)))
    thread = threading.Thread(
        target=worker.run_forever, args=(stop,), name="outbox-worker", daemon=True
    )
    thread.start()
    return thread


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def run_worker(settings: Settings, *, idle_seconds: float) -> int:
    """Run the outbox worker until SIGTERM or SIGINT."""
    engine = make_engine(settings.database_url)
    worker = build_worker(settings, make_sessionmaker(engine))
    worker.run_forever(_stop_on_signals(), idle_seconds=idle_seconds)
    engine.dispose()
    return 0


def run_sync(settings: Settings, *, poll_interval: float) -> int:
    """Run the MQTT relay and the gate-event ingest until SIGTERM or SIGINT."""
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    broker = settings.broker
    service = SyncService(
        make_sessionmaker(engine),
        broker,
        poll_interval=poll_interval,
        clock_skew=timedelta(seconds=settings.stay_clock_skew_seconds),
    )
    stop = _stop_on_signals()
    service.start()
    log.info("sync running against %s:%d", broker.host, broker.port)
    stop.wait()
    service.stop()
    engine.dispose()
    return 0
