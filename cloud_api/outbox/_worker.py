"""The outbox worker: runs the side effects written to ``outbox`` (payment calls, emails).

A due message (``sent_at`` null, not ``dead``, ``available_at`` <= now, a kind we have a handler
for) is claimed in a short transaction that pushes ``available_at`` out by a lease (other workers
skip it; a crashed worker's claim lapses). The handler then runs *outside* any transaction — no
database lock is held during network calls — opening its own short sessions, and a last short
transaction records the outcome. On success the message is marked sent. On a retryable failure
(network, provider or SMTP unavailable) ``attempts`` grows and ``available_at`` moves out by an
exponential backoff; after ``max_attempts``, or at once on a permanent failure (declined, rejected,
malformed payload), the message is marked ``dead`` and copied to ``outbox_dead_letters``.

The claim also commits ``handling_since``, cleared again with the outcome. A worker killed
between the two leaves it set: nobody knows whether the side effect happened. Kinds the worker
was told are *at most once* (``at_most_once``: email, which cannot be taken back and carries no
idempotency key the mail server honours) are then dead-lettered by the next claim
(``outcome_unknown``) rather than done a second time; other kinds (the payment calls, which send
the same idempotency key every attempt) are simply tried again. The lease must outlast a
handler's own timeout, or a slow attempt counts as an abandoned one.

The handlers come from the daemon's composition root (``cloud_api.daemons``); kinds without a
handler are left untouched (the MQTT relay of ``lot_changes`` runs its own loop).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from cloud_api.db import Base
from cloud_api.models import OutboxMessage, UTCDateTime, utcnow
from cloud_api.outbox._contract import Handler, OutboxItem, PermanentError, RetryableError

__all__ = ["DeadLetter", "OutboxWorker", "OutcomeUnknown", "RetryPolicy"]

log = logging.getLogger(__name__)

_RETRYABLE: tuple[type[BaseException], ...] = (
    RetryableError,
    ConnectionError,
    TimeoutError,
    OSError,
)
_PERMANENT: tuple[type[BaseException], ...] = (
    PermanentError,
    LookupError,  # payload field or referenced row missing
    ValueError,
    TypeError,
)


class DeadLetter(Base):
    """A message the worker gave up on, kept for an operator to inspect and replay."""

    __tablename__ = "outbox_dead_letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    outbox_id: Mapped[int] = mapped_column(Integer, unique=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutcomeUnknown(Exception):
    """An earlier attempt at an at-most-once message stopped before recording its outcome."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay: timedelta = timedelta(seconds=5)
    factor: float = 2.0
    max_delay: timedelta = timedelta(hours=1)
    lease: timedelta = timedelta(minutes=5)
    """How long a claimed message stays invisible to other workers while being handled."""

    def delay(self, attempts: int) -> timedelta:
        """Wait before the next try after ``attempts`` failed tries (1 → base delay)."""
        cap = self.max_delay.total_seconds()
        exponent = min(max(0, attempts - 1), 64)  # beyond 2**64 every delay is the cap anyway
        seconds = self.base_delay.total_seconds() * self.factor**exponent
        return timedelta(seconds=min(seconds, cap))


class OutboxWorker:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        handlers: Mapping[str, Handler],
        *,
        policy: RetryPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        periodic: Callable[[Session, datetime], object] | None = None,
        at_most_once: Collection[str] = (),
    ) -> None:
        self._sessions = sessions
        self._handlers = dict(handlers)
        self._at_most_once = frozenset(at_most_once)
        self.policy = policy or RetryPolicy()
        self._clock = clock
        self._periodic = periodic
        self.failed_rounds = 0

    def _claim(self, now: datetime) -> OutboxItem | None:
        """The next due message, leased and marked ``handling_since`` in one commit (before the
        handler runs); at-most-once messages an earlier attempt left in doubt are dead-lettered
        on the way."""
        with self._sessions.begin() as session:
            while True:
                message = session.scalars(
                    select(OutboxMessage)
                    .where(
                        OutboxMessage.sent_at.is_(None),
                        OutboxMessage.dead.is_(False),
                        OutboxMessage.available_at <= now,
                        OutboxMessage.kind.in_(list(self._handlers)),
                    )
                    .order_by(OutboxMessage.available_at, OutboxMessage.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                ).first()
                if message is None:
                    return None
                if message.handling_since is None or message.kind not in self._at_most_once:
                    break
                self._abandoned(session, message, now)
            message.available_at = now + self.policy.lease
            message.handling_since = now
            return OutboxItem(message.id, message.kind, dict(message.payload), message.attempts)

    def _abandoned(self, session: Session, message: OutboxMessage, now: datetime) -> None:
        """An at-most-once message whose last attempt never recorded an outcome: it may have
        gone out, so it is not tried again."""
        since = message.handling_since
        message.attempts += 1
        message.handling_since = None
        unknown = OutcomeUnknown(
            f"an attempt started at {since.isoformat() if since else '?'} never recorded its "
            "outcome (the worker stopped); not tried again: it may have gone out"
        )
        self._failed(session, message, now, unknown, permanent=True)
        session.flush()

    def run_once(self, limit: int = 100) -> int:
        """Handle up to ``limit`` due messages; return how many were handled (any outcome)."""
        now = self._clock()
        if self._periodic is not None:
            with self._sessions.begin() as session:
                self._periodic(session, now)
        done = 0
        while done < limit:
            item = self._claim(now)
            if item is None:
                break
            self._handle(item, now)
            done += 1
        return done

    def _handle(self, item: OutboxItem, now: datetime) -> None:
        error: BaseException | None = None
        permanent = False
        try:
            self._handlers[item.kind](self._sessions, item)
        except _RETRYABLE as exc:
            error = exc
        except _PERMANENT as exc:
            error, permanent = exc, True
        with self._sessions.begin() as session:
            message = session.get_one(OutboxMessage, item.id, with_for_update=True)
            message.attempts += 1
            message.handling_since = None
            if error is None:
                message.sent_at = now
                log.info("outbox %s %s done", message.id, message.kind)
            else:
                self._failed(session, message, now, error, permanent=permanent)

    def _failed(
        self,
        session: Session,
        message: OutboxMessage,
        now: datetime,
        exc: BaseException,
        *,
        permanent: bool,
    ) -> None:
        message.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        if permanent or message.attempts >= self.policy.max_attempts:
            message.dead = True
            session.add(
                DeadLetter(
                    outbox_id=message.id,
                    kind=message.kind,
                    payload=message.payload,
                    attempts=message.attempts,
                    last_error=message.last_error,
                    created_at=now,
                )
            )
            log.error(
                "outbox %s %s dead after %s attempts: %s",
                message.id,
                message.kind,
                message.attempts,
                message.last_error,
            )
            return
        message.available_at = now + self.policy.delay(message.attempts)
        log.warning(
            "outbox %s %s attempt %s failed (%s); retry at %s",
            message.id,
            message.kind,
            message.attempts,
            message.last_error,
            message.available_at.isoformat(),
        )

    def run_forever(self, stop: threading.Event, *, idle_seconds: float = 1.0) -> None:
        """Loop until ``stop`` is set, waiting ``idle_seconds`` (on the event) when idle.

        A round that raises (the database gone, a reminder query failing) is logged with its
        traceback and counted in ``failed_rounds``; the loop waits ``idle_seconds`` and goes on:
        the messages stay in the outbox for the next round."""
        log.info("outbox worker started for %s", ", ".join(sorted(self._handlers)))
        while not stop.is_set():
            try:
                handled = self.run_once()
            except Exception:  # any failure: the worker must outlive it
                self.failed_rounds += 1
                log.exception("outbox round failed (%d so far); retrying", self.failed_rounds)
                handled = 0
            if handled == 0:
                stop.wait(idle_seconds)
        log.info("outbox worker stopped")
