"""Prometheus metrics of the cloud API, served at ``GET /metrics``.

Each app has its own :class:`~prometheus_client.CollectorRegistry` (tests build many apps).

- ``parkgate_http_request_seconds{method,route,status}``: latency per route *template*
  (``/bookings/{booking_id}``, never the id), measured by an ASGI middleware.
- ``parkgate_bookings_created_total`` / ``parkgate_bookings_cancelled_total``: counted from the
  ORM on commit (a rolled-back transaction counts nothing), so every path that creates or cancels
  a booking (API, payment failure, admin) is seen.
- ``parkgate_webhook_failures_total{reason}``: payment webhooks refused (``bad_signature``,
  ``stale_signature``, ``malformed_event``, ``too_large``; ``http_5xx`` for crashes), read from the
  webhook's answer.
- ``parkgate_cloud_outbox_depth{kind}`` and ``parkgate_cloud_outbox_dead{kind}``: read from the
  database at scrape time, so they include the worker processes' progress.

With ``cloud-api serve --workers N`` each process keeps its own counters: scrape one process per
container, or run one worker per replica behind the load balancer.

Access: with ``PARKGATE_METRICS_TOKEN`` set, a scrape must send ``Authorization: Bearer <token>``
(401 otherwise); unset, only clients on this host (127.0.0.1, ::1) are answered (403 otherwise).
A reverse proxy on the same host makes every client look local: set the token there.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import event, func, inspect, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud_api.changes import INFO_BOOKING_COUNTS
from cloud_api.models import Booking, BookingStatus, OutboxMessage

__all__ = ["CONTENT_TYPE", "CloudMetrics", "install_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
WEBHOOK_PATH = "/payments/webhook"
LOCAL_HOSTS = frozenset({"127.0.0.1", "::1"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class CloudMetrics:
    """The registry and the event metrics of one cloud app."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.http_seconds = Histogram(
            "parkgate_http_request_seconds",
            "HTTP request latency by method, route template and status code.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.bookings_created = Counter(
            "parkgate_bookings_created", "Bookings created (committed).", registry=self.registry
        )
        self.bookings_cancelled = Counter(
            "parkgate_bookings_cancelled",
            "Bookings that became cancelled (customer, operator or failed payment).",
            registry=self.registry,
        )
        self.webhook_failures = Counter(
            "parkgate_webhook_failures",
            "Payment webhooks refused, by reason.",
            ["reason"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def count_bookings(self, sessions: sessionmaker[Session]) -> None:
        """Count bookings created and cancelled by transactions of ``sessions`` that commit."""

        @event.listens_for(sessions, "after_flush")
        def _collect(session: Session, _ctx: Any) -> None:
            created = sum(1 for obj in session.new if isinstance(obj, Booking))
            cancelled = sum(1 for obj in session.dirty if _became_cancelled(obj))
            if created or cancelled:
                pending = session.info.setdefault(INFO_BOOKING_COUNTS, [0, 0])
                pending[0] += created
                pending[1] += cancelled

        @event.listens_for(sessions, "after_commit")
        def _count(session: Session) -> None:
            pending = session.info.pop(INFO_BOOKING_COUNTS, None)
            if pending:
                self.bookings_created.inc(pending[0])
                self.bookings_cancelled.inc(pending[1])

        @event.listens_for(sessions, "after_rollback")
        def _forget(session: Session) -> None:
            session.info.pop(INFO_BOOKING_COUNTS, None)


def _became_cancelled(obj: object) -> bool:
    if not isinstance(obj, Booking):
        return False
    history = inspect(obj).attrs.status.history
    return BookingStatus.CANCELLED.value in (history.added or ())


class OutboxCollector(Collector):
    """Outbox messages waiting and dead, by kind, counted in the database at scrape time."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        waiting = GaugeMetricFamily(
            "parkgate_cloud_outbox_depth", "Outbox messages not yet sent.", labels=["kind"]
        )
        dead = GaugeMetricFamily(
            "parkgate_cloud_outbox_dead", "Outbox messages given up on.", labels=["kind"]
        )
        query = (
            select(OutboxMessage.kind, OutboxMessage.dead, func.count())
            .where(OutboxMessage.sent_at.is_(None))
            .group_by(OutboxMessage.kind, OutboxMessage.dead)
        )
        with self._sessions() as session:
            for kind, is_dead, count in session.execute(query):
                (dead if is_dead else waiting).add_metric([kind], count)
        yield waiting
        yield dead


class RequestMetrics:
    """ASGI middleware: request latency per route template; refused webhooks by reason."""

    def __init__(self, app: ASGIApp, metrics: CloudMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        webhook = scope["path"] == WEBHOOK_PATH
        body = bytearray()

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif webhook and message["type"] == "http.response.body" and status >= 400:
                body.extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.http_seconds.labels(scope["method"], route, str(status)).observe(
                time.perf_counter() - started
            )
            if webhook and status >= 400:
                self.metrics.webhook_failures.labels(_refusal(status, bytes(body))).inc()


def _refusal(status: int, body: bytes) -> str:
    """The webhook's ``result`` reason (``{"result": "bad_signature"}``), else ``http_<status>``."""
    try:
        result = json.loads(body).get("result")
    except (ValueError, AttributeError):
        result = None
    return result if isinstance(result, str) and result else f"http_{status}"


def scrape_refusal(request: Request, token: str | None) -> JSONResponse | None:
    """Why this request may not scrape (see the module docstring), or None."""
    if token is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token):
            return None
        return JSONResponse(
            {"reason": "unauthenticated", "detail": "send Authorization: Bearer <metrics token>"},
            status_code=401,
        )
    host = request.client.host if request.client else ""
    if host in LOCAL_HOSTS:
        return None
    return JSONResponse(
        {"reason": "metrics_local_only", "detail": "set PARKGATE_METRICS_TOKEN to scrape remotely"},
        status_code=403,
    )


def install_metrics(
    app: FastAPI, sessions: sessionmaker[Session], *, token: str | None = None
) -> CloudMetrics:
    """Add the middleware, the ORM counters, the outbox gauges and ``GET /metrics`` to ``app``;
    ``token``: the scrapers' bearer token (None: local scrapers only)."""
    metrics = CloudMetrics()
    metrics.count_bookings(sessions)
    metrics.registry.register(OutboxCollector(sessions))
    app.add_middleware(RequestMetrics, metrics=metrics)

    async def scrape(request: Request) -> Response:
        refusal = scrape_refusal(request, token)
        if refusal is not None:
            return refusal
        body = await run_in_threadpool(metrics.render)  # the outbox gauges query the database
        return Response(body, media_type=CONTENT_TYPE)

    app.add_api_route("/metrics", scrape, methods=["GET"], include_in_schema=False)
    app.state.metrics = metrics
    return metrics
