"""The payment provider and webhook secret the settings ask for.

``cloud-api serve`` and ``cloud-api worker`` both come through here, so the API (verifying
webhooks) and the worker (calling the provider) agree on the provider and secret.

Webhook secret: ``PARKGATE_WEBHOOK_SECRET``. With the Stripe provider the settings require it.
With the local provider and a SQLite file database, an unset secret is generated once per install
and kept next to the database (``<db>.webhook-secret``, mode 0600), so every process of the install
reads the same one; with another database it must be given (``serve`` alone generates one per run
and hands it to its own processes).

The Stripe SDK is imported here only when the settings choose Stripe.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from sqlalchemy.engine import make_url

from cloud_api.payments.local_provider import LocalProvider
from cloud_api.payments.provider import PaymentProvider
from cloud_api.settings import ENVIRONMENT, Settings, SettingsError

__all__ = ["build_provider", "resolve_webhook_secret"]

log = logging.getLogger(__name__)
SECRET_ENV = ENVIRONMENT[("webhook_secret",)]


def _secret_file(database_url: str) -> Path | None:
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return None
    return Path(f"{url.database}.webhook-secret")


def resolve_webhook_secret(settings: Settings, *, generate: bool = True) -> str:
    """The configured secret, or the local install's stored one (created when missing)."""
    configured = settings.secret("webhook_secret")
    if configured:
        return configured
    path = _secret_file(settings.database_url)
    if path is None:
        if not generate:
            raise SettingsError(
                [f"{SECRET_ENV}: required unless the database is a SQLite file (whsec_...)"]
            )
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


def build_provider(settings: Settings, secret: str) -> PaymentProvider:
    """The provider ``settings.payment_provider`` names, signing webhooks with ``secret``."""
    if settings.payment_provider == "stripe":
        from cloud_api.payments.stripe_provider import StripeProvider, build_stripe_client

        api_key = settings.secret("stripe_api_key")
        assert api_key is not None  # the settings model requires it with stripe
        return StripeProvider(build_stripe_client(api_key), webhook_secret=secret)
    return LocalProvider(
        webhook_secret=secret,
        webhook_url=settings.public_url.rstrip("/") + "/payments/webhook",
        autopay_seconds=settings.local_autopay_seconds,  # the demo's customer pays by itself
    )
