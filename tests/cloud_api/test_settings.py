"""The cloud settings: one model from flags over the environment, errors per field by source."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cloud_api.settings import ENVIRONMENT, Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_variable_reaches_its_field() -> None:
    env = {
        "PARKGATE_DATABASE_URL": "sqlite:////tmp/parkgate.db",
        "PARKGATE_DB_POOL_SIZE": "4",
        "PARKGATE_HOLD_SWEEP_SECONDS": "0",
        "PARKGATE_PAYMENT_PROVIDER": "stripe",
        "PARKGATE_STRIPE_API_KEY": "sk_test_x",
        "PARKGATE_WEBHOOK_SECRET": "whsec_x",
        "PARKGATE_LOCAL_AUTOPAY_SECONDS": "2.5",
        "PARKGATE_MQTT_PORT": "8883",
        "PARKGATE_MQTT_PASSWORD": "broker-pw",
        "PARKGATE_MQTT_INGEST_GROUP": "cloud",
        "PARKGATE_SMTP_HOST": "mail.test",
        "PARKGATE_SMTP_STARTTLS": "yes",
        "PARKGATE_REDIS_URL": "",  # empty counts as unset
    }
    settings = load_settings(env)
    assert (settings.database_url, settings.db_pool_size) == ("sqlite:////tmp/parkgate.db", 4)
    assert settings.hold_sweep_seconds == 0 and settings.redis_url is None
    assert settings.secret("stripe_api_key") == "sk_test_x"
    assert settings.secret("webhook_secret") == "whsec_x"
    assert settings.local_autopay_seconds == 2.5
    assert (settings.broker.port, settings.broker.ingest_group) == (8883, "cloud")
    assert settings.broker.password is not None
    assert settings.broker.password.get_secret_value() == "broker-pw"
    assert (settings.smtp.host, settings.smtp.starttls) == ("mail.test", True)
    assert "broker-pw" not in repr(settings) and "sk_test_x" not in repr(settings)


def test_flags_win_over_the_environment_and_defaults_lose_to_it() -> None:
    env = {"PARKGATE_DATABASE_URL": "sqlite:///env.db", "PARKGATE_PUBLIC_URL": "https://p.test"}
    settings = load_settings(
        env,
        flags={"database_url": "sqlite:///flag.db", "redis_url": None},
        defaults={"public_url": "http://0.0.0.0:9000"},
    )
    assert settings.database_url == "sqlite:///flag.db"
    assert settings.public_url == "https://p.test"
    assert load_settings({}, defaults={"public_url": "http://h:1"}).public_url == "http://h:1"


@pytest.mark.parametrize(
    ("env", "flags", "expected"),
    [
        ({"PARKGATE_DB_POOL_SIZE": "ten"}, {}, "PARKGATE_DB_POOL_SIZE='ten': Input should be"),
        ({"PARKGATE_MQTT_PORT": "70000"}, {}, "PARKGATE_MQTT_PORT='70000': Input should be"),
        ({"PARKGATE_PAYMENT_PROVIDER": "paypal"}, {}, "'local' or 'stripe'"),
        ({"PARKGATE_SMTP_PASSWORD": ""}, {"database_url": ""}, "--database-url='': String"),
        ({"PARKGATE_PUBLIC_URL": "parkgate.test"}, {}, "Expected: The URL customers"),
        ({"PARKGATE_PAYMENT_PROVIDER": "stripe"}, {}, "PARKGATE_STRIPE_API_KEY and PARKGATE_WEB"),
    ],
)
def test_a_bad_value_names_its_source_and_the_fix(
    env: dict[str, str], flags: dict[str, object], expected: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env, flags=flags)
    assert len(caught.value.problems) == 1
    assert expected in caught.value.problems[0]


def test_secrets_are_not_echoed_in_errors() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"PARKGATE_WEBHOOK_SECRET": "whsec_" + "x" * 5, "PARKGATE_MQTT_PORT": "x"})
    assert "whsec_" not in str(caught.value)


def test_every_field_has_a_description_and_a_variable() -> None:
    paths = {(name,) for name in Settings.model_fields if name not in ("broker", "smtp")}
    for section in ("broker", "smtp"):
        model = Settings.model_fields[section].annotation
        assert model is not None
        for name, field in model.model_fields.items():  # type: ignore[union-attr]
            assert field.description, f"{section}.{name}"
            if name != "session_expiry_s":  # a protocol constant, not an operator's choice
                paths.add((section, name))
    assert all(field.description for field in Settings.model_fields.values())
    assert paths == set(ENVIRONMENT)


def test_the_cli_reports_bad_settings_with_exit_2_and_no_traceback(sqlite_url: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "PARKGATE_HOLD_SWEEP_SECONDS": "soon"}
    done = subprocess.run(
        [sys.executable, "-m", "cloud_api.cli", "serve", "--database-url", sqlite_url],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert b"PARKGATE_HOLD_SWEEP_SECONDS='soon'" in done.stderr
    assert b"Traceback" not in done.stderr


@pytest.mark.parametrize("retired", ["PARKGATE_MQTT_USER", "PARKGATE_MQTT_CLIENT_PREFIX"])
def test_a_retired_broker_variable_is_an_error_naming_its_replacement(retired: str) -> None:
    """The relay and the ingest log in under their own names now (issue 14); a deployment still
    setting the one shared login must hear so rather than have it ignored."""
    with pytest.raises(SettingsError) as caught:
        load_settings({retired: "cloud"})
    assert caught.value.problems[0].startswith(f"{retired} is retired")
    assert "PARKGATE_MQTT_INGEST_USER" in caught.value.problems[0]
    broker = load_settings({"PARKGATE_MQTT_INGEST_USER": "cloud-ingest-2"}).broker
    assert (broker.relay_username, broker.ingest_username) == ("cloud-relay", "cloud-ingest-2")
