"""The cloud daemons' settings: one validated model, built once at the command line.

:func:`load_settings` is the only place that reads the environment (``PARKGATE_*``; the names
below in :data:`ENVIRONMENT`). Command-line flags win over the environment, the environment over
the defaults. A value that cannot work is reported per field, naming the flag or variable it came
from and what it should be (:class:`SettingsError`); ``cloud-api`` prints those lines and exits 2.
Everything after start-up takes a :class:`Settings` (or a part of it) as an argument.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

__all__ = [
    "ENVIRONMENT",
    "BrokerSettings",
    "Settings",
    "SettingsError",
    "SmtpConfig",
    "load_settings",
]

DEFAULT_DATABASE_URL = "sqlite:///parkgate-cloud.db"
RELAY_USER = "cloud-relay"
INGEST_USER = "cloud-ingest"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerSettings(_Section):
    """The MQTT broker the relay and the ingest (``cloud-api sync``) connect to."""

    host: str = Field("127.0.0.1", description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 for TLS).")
    relay_username: str = Field(
        RELAY_USER,
        min_length=1,
        description="The relay's broker login, also its client id (the broker makes every "
        "client id its login); the shipped ACL grants it writing reservations and commands.",
    )
    ingest_username: str = Field(
        INGEST_USER,
        min_length=1,
        description="The ingest's broker login, also its client id and persistent session; "
        "the shipped ACL grants it reading events and status and writing acks. One per worker.",
    )
    password: SecretStr | None = Field(
        None, description="The broker password of both the relay's and the ingest's login."
    )
    tls_ca_file: str | None = Field(None, description="CA bundle file; set: connect with TLS.")
    session_expiry_s: int = Field(
        24 * 3600,
        ge=0,
        description="The ingest's persistent session: events queue at the broker this long "
        "while it restarts.",
    )
    ingest_group: str | None = Field(
        None,
        description="Unset: a plain persistent subscription (Mosquitto 2.0 restores it after "
        "its own restart). A name: several ingest workers share $share/<name>/... (not restored "
        "by Mosquitto 2.0; see docs/scaling.md).",
    )


class SmtpConfig(_Section):
    """Where the outbox worker sends customer email; no host: emails stay in the outbox."""

    host: str | None = Field(None, description="SMTP server; unset: no email is sent.")
    port: int = Field(25, ge=1, le=65535, description="SMTP port.")
    sender: str = Field("parkgate@localhost", min_length=3, description="From address.")
    username: str | None = Field(None, description="SMTP login user; unset: no login.")
    password: SecretStr | None = Field(None, description="SMTP login password.")
    starttls: bool = Field(False, description="Upgrade the connection with STARTTLS (1/0).")


class Settings(_Section):
    """Everything ``cloud-api serve``, ``worker`` and ``sync`` read."""

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        min_length=1,
        description="SQLAlchemy URL: a SQLite file or postgresql+psycopg://...",
    )
    redis_url: str | None = Field(
        None, description="redis://host:port/db enabling the availability cache; unset: none."
    )
    public_url: str = Field(
        "http://127.0.0.1:8000",
        pattern=r"^https?://",
        description="The URL customers and the payment provider reach the API at "
        "(http(s)://...; the webhook URL derives from it).",
    )
    hold_sweep_seconds: float = Field(
        30.0, ge=0, description="Expire unpaid holds this often (seconds); 0 disables."
    )
    db_pool_size: int = Field(10, ge=1, description="SQLAlchemy pool size per process.")
    booking_connections: int = Field(
        2,
        ge=1,
        description="PostgreSQL connections per API process for POST /bookings (bookings of a "
        "lot queue on its row anyway; fewer callers waste less CPU on the lock).",
    )
    token_cache_seconds: float = Field(
        10.0, ge=0, description="Verified bearer tokens kept in-process (seconds); 0 disables."
    )
    reminder_lead_minutes: float = Field(
        15.0, ge=0, description='"Your booking ends soon" email this many minutes before the end.'
    )
    payment_provider: Literal["local", "stripe"] = Field(
        "local", description="local (demo, tests) or stripe."
    )
    stripe_api_key: SecretStr | None = Field(
        None, description="Stripe secret API key (sk_...); required with the stripe provider."
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="The payment webhooks' signing secret (whsec_...); required with stripe. "
        "Local provider: unset generates one per install next to a SQLite database.",
    )
    local_autopay_seconds: float | None = Field(
        None,
        ge=0,
        description="Local provider only: the customer 'pays' by itself after this many "
        "seconds (demo); unset: never.",
    )
    token_lifetime_days: float = Field(
        30.0,
        gt=0,
        description="Bearer tokens of people (customers, operators, admins) issued "
        "by the API expire after this many days.",
    )
    device_token_lifetime_days: float = Field(
        365.0,
        gt=0,
        description="A lot's device token (provisioned or rotated) expires after "
        "this many days; rotate it before (POST /admin/lots/{id}/device-token).",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="GET /metrics needs Authorization: Bearer <this>; unset: /metrics answers "
        "only clients on this host (127.0.0.1 / ::1).",
    )
    max_json_body_kb: int = Field(
        64, ge=1, le=1024, description="Largest request body (KiB) of the JSON routes."
    )
    max_import_body_kb: int = Field(
        5120, ge=1, le=102400, description="Largest access-list CSV import body (KiB)."
    )
    retention_sweep_seconds: float = Field(
        3600.0,
        ge=0,
        description="Run the retention job (plates, change feed, dead letters) "
        "this often (seconds); 0 disables.",
    )
    plate_retention_days: int = Field(
        30,
        ge=1,
        le=3650,
        description="Plates in gate events are blanked this many days after "
        "the event, and in bookings this many days after the stay ended.",
    )
    dead_letter_retention_days: int = Field(
        30, ge=1, le=3650, description="Dead letters (outbox and ingest) are deleted after."
    )
    stay_clock_skew_seconds: float = Field(
        120.0,
        ge=0,
        le=3600,
        description="A lot's reported arrival or exit may be this far after the cloud's now; "
        "later ones are moved to now and flagged (and earn no early-exit credit).",
    )
    pay_by_plate_per_client_per_minute: int = Field(
        10, ge=1, description="Pay-by-plate look-ups and payments per client address a minute."
    )
    pay_by_plate_per_lot_per_minute: int = Field(
        120, ge=1, description="Pay-by-plate look-ups and payments per lot a minute (all clients)."
    )
    outbox_lease_seconds: float = Field(
        300.0,
        gt=0,
        le=86400,
        description="A message the outbox worker claimed stays invisible to other workers this "
        "long; a crashed worker's claim lapses after it and the message is handled again.",
    )
    broker: BrokerSettings = Field(
        default_factory=BrokerSettings, description="MQTT broker of cloud-api sync."
    )
    smtp: SmtpConfig = Field(default_factory=SmtpConfig, description="Customer email.")

    @model_validator(mode="after")
    def _stripe_needs_its_keys(self) -> Settings:
        if self.payment_provider == "stripe":
            missing = [
                name
                for name, value in (
                    ("stripe_api_key", self.stripe_api_key),
                    ("webhook_secret", self.webhook_secret),
                )
                if value is None
            ]
            if missing:
                raise ValueError(
                    "the stripe provider needs "
                    + " and ".join(ENVIRONMENT[(name,)] for name in missing)
                    + " (the Stripe secret key sk_... and the webhook signing secret whsec_...)"
                )
        return self

    def secret(
        self, name: Literal["webhook_secret", "stripe_api_key", "metrics_token"]
    ) -> str | None:
        """A secret's plain value, or None when unset."""
        value: SecretStr | None = getattr(self, name)
        return value.get_secret_value() if value is not None else None


ENVIRONMENT: dict[tuple[str, ...], str] = {
    ("database_url",): "PARKGATE_DATABASE_URL",
    ("redis_url",): "PARKGATE_REDIS_URL",
    ("public_url",): "PARKGATE_PUBLIC_URL",
    ("hold_sweep_seconds",): "PARKGATE_HOLD_SWEEP_SECONDS",
    ("db_pool_size",): "PARKGATE_DB_POOL_SIZE",
    ("booking_connections",): "PARKGATE_BOOKING_CONNECTIONS",
    ("token_cache_seconds",): "PARKGATE_TOKEN_CACHE_SECONDS",
    ("reminder_lead_minutes",): "PARKGATE_REMINDER_LEAD_MINUTES",
    ("payment_provider",): "PARKGATE_PAYMENT_PROVIDER",
    ("stripe_api_key",): "PARKGATE_STRIPE_API_KEY",
    ("webhook_secret",): "PARKGATE_WEBHOOK_SECRET",
    ("local_autopay_seconds",): "PARKGATE_LOCAL_AUTOPAY_SECONDS",
    ("token_lifetime_days",): "PARKGATE_TOKEN_LIFETIME_DAYS",
    ("device_token_lifetime_days",): "PARKGATE_DEVICE_TOKEN_LIFETIME_DAYS",
    ("metrics_token",): "PARKGATE_METRICS_TOKEN",
    ("max_json_body_kb",): "PARKGATE_MAX_JSON_BODY_KB",
    ("max_import_body_kb",): "PARKGATE_MAX_IMPORT_BODY_KB",
    ("retention_sweep_seconds",): "PARKGATE_RETENTION_SWEEP_SECONDS",
    ("plate_retention_days",): "PARKGATE_PLATE_RETENTION_DAYS",
    ("dead_letter_retention_days",): "PARKGATE_DEAD_LETTER_RETENTION_DAYS",
    ("stay_clock_skew_seconds",): "PARKGATE_STAY_CLOCK_SKEW_SECONDS",
    ("pay_by_plate_per_client_per_minute",): "PARKGATE_PAY_BY_PLATE_PER_CLIENT_PER_MINUTE",
    ("pay_by_plate_per_lot_per_minute",): "PARKGATE_PAY_BY_PLATE_PER_LOT_PER_MINUTE",
    ("outbox_lease_seconds",): "PARKGATE_OUTBOX_LEASE_SECONDS",
    ("broker", "host"): "PARKGATE_MQTT_HOST",
    ("broker", "port"): "PARKGATE_MQTT_PORT",
    ("broker", "relay_username"): "PARKGATE_MQTT_RELAY_USER",
    ("broker", "ingest_username"): "PARKGATE_MQTT_INGEST_USER",
    ("broker", "password"): "PARKGATE_MQTT_PASSWORD",
    ("broker", "tls_ca_file"): "PARKGATE_MQTT_TLS_CA",
    ("broker", "ingest_group"): "PARKGATE_MQTT_INGEST_GROUP",
    ("smtp", "host"): "PARKGATE_SMTP_HOST",
    ("smtp", "port"): "PARKGATE_SMTP_PORT",
    ("smtp", "sender"): "PARKGATE_SMTP_SENDER",
    ("smtp", "username"): "PARKGATE_SMTP_USERNAME",
    ("smtp", "password"): "PARKGATE_SMTP_PASSWORD",
    ("smtp", "starttls"): "PARKGATE_SMTP_STARTTLS",
}
"""Field path → environment variable. An empty variable counts as unset."""

RETIRED = {
    "PARKGATE_MQTT_USER": "the relay and the ingest log in as PARKGATE_MQTT_RELAY_USER and "
    "PARKGATE_MQTT_INGEST_USER (default cloud-relay, cloud-ingest)",
    "PARKGATE_MQTT_CLIENT_PREFIX": "the broker makes every client id its login "
    "(PARKGATE_MQTT_RELAY_USER, PARKGATE_MQTT_INGEST_USER)",
}
"""Variables that no longer mean anything → what replaced them (set: a problem, not ignored)."""


class SettingsError(ValueError):
    """The settings cannot work; ``problems`` holds one line per field, naming its source."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_settings(
    env: Mapping[str, str] | None = None,
    *,
    flags: Mapping[str, object] | None = None,
    defaults: Mapping[str, object] | None = None,
) -> Settings:
    """Validate the settings from ``flags`` (``{"database_url": "--database-url value"}``-style:
    field name → value, None for not given) over ``env`` (default: this process's environment)
    over ``defaults`` (field name → value) over the model's own defaults."""
    env = os.environ if env is None else env
    retired = [f"{var} is retired: {why}" for var, why in RETIRED.items() if env.get(var, "")]
    if retired:
        raise SettingsError(retired)
    values: dict[str, Any] = {}
    sources: dict[tuple[str, ...], str] = {}
    for name, value in (defaults or {}).items():
        values[name] = value
    for path, var in ENVIRONMENT.items():
        raw = env.get(var, "").strip()
        if raw:
            _put(values, path, raw)
            sources[path] = var
    for name, value in (flags or {}).items():
        if value is not None:
            values[name] = value
            sources[(name,)] = "--" + name.replace("_", "-")
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise SettingsError([_problem(error, sources) for error in exc.errors()]) from None


def _put(values: dict[str, Any], path: tuple[str, ...], raw: str) -> None:
    for part in path[:-1]:
        values = values.setdefault(part, {})
    values[path[-1]] = raw


def _problem(error: Any, sources: Mapping[tuple[str, ...], str]) -> str:
    path = tuple(str(part) for part in error["loc"])
    if not path:  # a rule across fields: its message names the variables
        return f"settings: {error['msg'].removeprefix('Value error, ')}"
    source = sources.get(path) or ENVIRONMENT.get(path) or ".".join(path)
    model: type[BaseModel] = Settings
    for part in path[:-1]:
        annotation = model.model_fields[part].annotation
        assert isinstance(annotation, type) and issubclass(annotation, BaseModel)
        model = annotation
    field = model.model_fields.get(path[-1])
    expected = f" Expected: {field.description}" if field and field.description else ""
    hidden = any(word in path[-1] for word in ("password", "secret", "key", "token"))
    shown = "(hidden)" if hidden else repr(error["input"])
    return f"{source}={shown}: {error['msg']}.{expected}"
