"""Settings of the cloud API, from the environment (``PARKGATE_*``) or given explicitly."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

__all__ = ["Settings"]

DEFAULT_DATABASE_URL = "sqlite:///parkgate-cloud.db"


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None  # redis://host:port/db enables the availability cache
    hold_sweep_seconds: float = 30.0  # expire unpaid holds this often; 0 disables the sweeper
    db_pool_size: int = 10
    # connections per worker process for POST /bookings on PostgreSQL: bookings of a lot queue
    # on its row anyway, and fewer concurrent callers waste less CPU on the lock (measured)
    booking_connections: int = 2
    token_cache_seconds: float = 10.0  # verified bearer tokens kept in-process; 0 disables
    webhook_secret: str | None = None  # unset: see cloud_api.runtime.resolve_webhook_secret
    payment_provider: str = "local"  # local | stripe
    stripe_api_key: str | None = None
    reminder_lead_minutes: float = 15.0  # "your booking ends soon" email this long before the end
    public_url: str = "http://127.0.0.1:8000"
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        values: dict[str, object] = {
            "database_url": env.get("PARKGATE_DATABASE_URL", DEFAULT_DATABASE_URL),
            "redis_url": env.get("PARKGATE_REDIS_URL") or None,
            "hold_sweep_seconds": float(env.get("PARKGATE_HOLD_SWEEP_SECONDS", "30")),
            "db_pool_size": int(env.get("PARKGATE_DB_POOL_SIZE", "10")),
            "booking_connections": int(env.get("PARKGATE_BOOKING_CONNECTIONS", "2")),
            "token_cache_seconds": float(env.get("PARKGATE_TOKEN_CACHE_SECONDS", "10")),
            "webhook_secret": env.get("PARKGATE_WEBHOOK_SECRET") or None,
            "payment_provider": env.get("PARKGATE_PAYMENT_PROVIDER", "local"),
            "stripe_api_key": env.get("PARKGATE_STRIPE_API_KEY") or None,
            "reminder_lead_minutes": float(env.get("PARKGATE_REMINDER_LEAD_MINUTES", "15")),
            "public_url": env.get("PARKGATE_PUBLIC_URL", "http://127.0.0.1:8000"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
