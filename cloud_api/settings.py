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
    webhook_secret: str = "whsec_local_parkgate"
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
            "webhook_secret": env.get("PARKGATE_WEBHOOK_SECRET", "whsec_local_parkgate"),
            "public_url": env.get("PARKGATE_PUBLIC_URL", "http://127.0.0.1:8000"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
