"""``cloud-api worker`` and the webhook secret taken from the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cloud_api import outbox
from cloud_api.db import make_engine, make_sessionmaker
from cloud_api.notifications import EMAIL_KIND, email_payload
from cloud_api.payments.configured import resolve_webhook_secret
from cloud_api.settings import Settings, SettingsError, load_settings
from devservices import REPO_ROOT as ROOT
from devservices import LocalInbox, wait_for


def test_stripe_needs_the_secret_from_the_environment(sqlite_url: str) -> None:
    env = {
        "PARKGATE_DATABASE_URL": sqlite_url,
        "PARKGATE_PAYMENT_PROVIDER": "stripe",
        "PARKGATE_STRIPE_API_KEY": "sk_test_x",
    }
    with pytest.raises(SettingsError, match="PARKGATE_WEBHOOK_SECRET"):
        load_settings(env)


def test_a_postgres_worker_needs_the_secret(sqlite_url: str) -> None:
    settings = Settings(database_url="postgresql+psycopg://db.invalid/parkgate")
    with pytest.raises(SettingsError, match="PARKGATE_WEBHOOK_SECRET"):
        resolve_webhook_secret(settings, generate=False)


def test_local_secret_is_generated_once_next_to_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    first = resolve_webhook_secret(Settings(database_url=url))
    assert first.startswith("whsec_") and first == resolve_webhook_secret(
        Settings(database_url=url)
    )
    stored = tmp_path / "cloud.db.webhook-secret"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert resolve_webhook_secret(Settings(database_url=url, webhook_secret="whsec_x")) == "whsec_x"


def test_worker_command_sends_an_outbox_email(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with LocalInbox() as inbox:
        with make_sessionmaker(engine).begin() as session:
            payload = email_payload("refund", to="ana@example.test", booking_id="bk_x", amount="5")
            outbox.enqueue(session, EMAIL_KIND, payload)
        engine.dispose()
        env = {
            **os.environ,
            "PARKGATE_DATABASE_URL": sqlite_url,
            "PARKGATE_SMTP_HOST": inbox.host,
            "PARKGATE_SMTP_PORT": str(inbox.port),
            "PARKGATE_SMTP_SENDER": "noreply@parkgate.test",
        }
        env.pop("PARKGATE_WEBHOOK_SECRET", None)
        cmd = [sys.executable, "-m", "cloud_api.cli", "worker", "--idle-seconds", "0.2"]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: len(inbox.messages) == 1, timeout=30, what="the worker's email")
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err.decode()
        assert inbox.messages[0]["To"] == "ana@example.test"


def test_worker_command_refuses_stripe_without_secret(sqlite_url: str) -> None:
    env = {**os.environ, "PARKGATE_DATABASE_URL": sqlite_url, "PARKGATE_PAYMENT_PROVIDER": "stripe"}
    env.pop("PARKGATE_WEBHOOK_SECRET", None)
    done = subprocess.run(
        [sys.executable, "-m", "cloud_api.cli", "worker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2 and b"PARKGATE_WEBHOOK_SECRET" in done.stderr
