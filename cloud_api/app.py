"""The cloud API's app: ``create_app(settings)`` wires the HTTP side together (the daemon's
composition root, :func:`cloud_api.daemons.build_api`, gives it the payment provider).

The payments engineer's webhook router (``cloud_api.webhooks``) is included like every other
router; it reads ``app.state.sessions`` and ``app.state.payment_provider``, which are set here.
Tests pass ``clock=`` to control time and ``payment_provider=`` to swap the provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from cloud_api import webhooks
from cloud_api.auth import TokenCache
from cloud_api.booking_pg import PgBooker
from cloud_api.bookings import expire_holds
from cloud_api.cache import AvailabilityCache, NearCache, NoCache, RedisCache, bump_on_commit
from cloud_api.db import make_engine, make_sessionmaker
from cloud_api.http_errors import install_error_handlers
from cloud_api.metrics import install_metrics
from cloud_api.models import utcnow
from cloud_api.payments.configured import build_provider, resolve_webhook_secret
from cloud_api.payments.provider import PaymentProvider
from cloud_api.routes import access, admin, analytics, bookings, lot_sync, lots, policies, stays
from cloud_api.settings import Settings

__all__ = ["create_app"]

log = logging.getLogger(__name__)


class HoldSweeper:
    """Expires unpaid holds every ``interval`` seconds in a daemon thread."""

    def __init__(
        self, sessions: sessionmaker[Session], interval: float, clock: Callable[[], datetime]
    ) -> None:
        self._sessions, self._interval, self._clock = sessions, interval, clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hold-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                with self._sessions() as session:
                    expired = expire_holds(session, self._clock())
                    session.commit()
                if expired:
                    log.info("expired %d unpaid holds", len(expired))
            except Exception:  # keep sweeping; the next round retries
                log.exception("hold sweep failed")


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utcnow,
    payment_provider: PaymentProvider | None = None,
    cache: AvailabilityCache | None = None,
) -> FastAPI:
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
    sessions = make_sessionmaker(engine)
    if cache is None:
        cache = RedisCache(settings.redis_url) if settings.redis_url else NoCache()
    bump_on_commit(sessions, cache)
    # per process, subscribed while the app runs (lifespan); in-process transports without
    # lifespan never subscribe and always take the Redis path
    near_cache = NearCache(cache.subscribe if isinstance(cache, RedisCache) else None)

    booker = None
    if engine.dialect.name == "postgresql":
        booker = PgBooker(
            settings.database_url,
            sessions,
            settings.booking_connections,
            hooks_do_io=isinstance(cache, RedisCache),
        )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if booker is not None:
            await booker.open()
        sweeper = None
        if settings.hold_sweep_seconds > 0:
            sweeper = HoldSweeper(sessions, settings.hold_sweep_seconds, clock)
            sweeper.start()
        subscription = asyncio.create_task(near_cache.keep_subscribed())
        yield
        subscription.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await subscription
        near_cache.close()
        if sweeper:
            sweeper.stop()
        if booker is not None:
            await booker.close()
        engine.dispose()

    app = FastAPI(
        title="ParkGate cloud API",
        version="1.0.0",
        description="Lots, availability, bookings without double booking, gate access, "
        "payments webhook, analytics and management.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.clock = clock
    app.state.cache = cache
    app.state.booker = booker  # POST /bookings on the event loop (PostgreSQL)
    app.state.near_cache = near_cache
    app.state.tokens = TokenCache(settings.token_cache_seconds)
    if payment_provider is None:  # tests and the ASGI entry: the provider the settings name
        payment_provider = build_provider(settings, resolve_webhook_secret(settings))
    app.state.payment_provider = payment_provider
    install_error_handlers(app)
    app.add_middleware(lots.NearCacheHits, near=near_cache)  # inside RequestMetrics
    install_metrics(app, sessions)  # GET /metrics (Prometheus)
    for module in (lots, bookings, access, analytics, admin, webhooks, lot_sync, policies, stays):
        app.include_router(module.router)
    return app
