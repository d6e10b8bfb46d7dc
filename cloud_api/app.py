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
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from cloud_api import webhooks
from cloud_api.auth import TokenCache
from cloud_api.body_limit import BodyLimit, BodyLimits
from cloud_api.booking_pg import PgBooker
from cloud_api.bookings import expire_holds
from cloud_api.cache import AvailabilityCache, NearCache, NoCache, RedisCache, bump_on_commit
from cloud_api.db import make_engine, make_sessionmaker
from cloud_api.http_errors import install_error_handlers
from cloud_api.metrics import install_metrics
from cloud_api.models import utcnow
from cloud_api.payments.checkout import PayLinks
from cloud_api.payments.configured import build_provider, resolve_webhook_secret
from cloud_api.payments.provider import PaymentProvider
from cloud_api.periodic import PeriodicJob
from cloud_api.rate_limits import RATE_WINDOW
from cloud_api.rate_limits import prune as prune_rate_hits
from cloud_api.retention import RetentionRules, run_retention
from cloud_api.routes import (
    access,
    admin,
    analytics,
    bookings,
    health,
    lot_sync,
    lots,
    me,
    pay,
    policies,
    stays,
    tokens,
)
from cloud_api.security_headers import SecurityHeaders
from cloud_api.settings import Settings

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def _sweep_holds(sessions: sessionmaker[Session], clock: Callable[[], datetime]) -> None:
    with sessions() as session:
        expired = expire_holds(session, clock())
        session.commit()
    if expired:
        log.info("expired %d unpaid holds", len(expired))


def _prune_rate_hits(sessions: sessionmaker[Session], clock: Callable[[], datetime]) -> None:
    with sessions.begin() as session:
        prune_rate_hits(session, clock(), RATE_WINDOW)


def periodic_jobs(
    settings: Settings, sessions: sessionmaker[Session], clock: Callable[[], datetime]
) -> list[PeriodicJob]:
    """The API process's periodic jobs (a zero interval leaves one out); not started."""
    rules = RetentionRules(
        plates=timedelta(days=settings.plate_retention_days),
        dead_letters=timedelta(days=settings.dead_letter_retention_days),
    )
    jobs = [
        PeriodicJob(
            "hold-sweep",
            settings.hold_sweep_seconds,
            lambda: _sweep_holds(sessions, clock),
            clock=clock,
        ),
        PeriodicJob(
            "rate-limit-prune",
            settings.hold_sweep_seconds,
            lambda: _prune_rate_hits(sessions, clock),
            clock=clock,
        ),
        PeriodicJob(
            "retention",
            settings.retention_sweep_seconds,
            lambda: run_retention(sessions, rules, clock()),
            clock=clock,
        ),
    ]
    return [job for job in jobs if job.interval > 0]


def _body_limits(settings: Settings) -> BodyLimits:
    return BodyLimits(
        json=settings.max_json_body_kb * 1024,
        csv_import=settings.max_import_body_kb * 1024,
        webhook=webhooks.MAX_BODY,
    )


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

    jobs = periodic_jobs(settings, sessions, clock)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if booker is not None:
            await booker.open()
        for job in jobs:
            job.start()
        subscription = asyncio.create_task(near_cache.keep_subscribed())
        yield
        subscription.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await subscription
        near_cache.close()
        for job in jobs:
            job.stop()
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
    app.state.jobs = jobs  # GET /health reports them
    app.state.tokens = TokenCache(settings.token_cache_seconds)
    if payment_provider is None:  # tests and the ASGI entry: the provider the settings name
        payment_provider = build_provider(settings, resolve_webhook_secret(settings))
    app.state.payment_provider = payment_provider
    app.state.pay_links = PayLinks(settings.public_url)  # pay pages in answers and checkouts
    install_error_handlers(app)
    app.add_middleware(lots.NearCacheHits, near=near_cache)  # inside RequestMetrics
    app.add_middleware(BodyLimit, limits=_body_limits(settings))  # inside RequestMetrics
    install_metrics(app, sessions, token=settings.secret("metrics_token"))  # GET /metrics
    app.add_middleware(SecurityHeaders, public_url=settings.public_url)  # outermost
    for module in (
        lots,
        bookings,
        access,
        analytics,
        admin,
        webhooks,
        lot_sync,
        policies,
        pay,
        stays,
    ):
        app.include_router(module.router)
    for extra in (tokens, me, health):
        app.include_router(extra.router)
    return app
