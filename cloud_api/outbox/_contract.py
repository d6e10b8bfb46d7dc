"""What a side effect handler and the outbox worker agree on: the claimed item, the handler
protocol and the two outcomes a handler can signal besides success.

Errors::

    OutboxError
    ├── RetryableError — not done this time (network, server down); try again after a backoff
    └── PermanentError — will never succeed (declined, rejected, malformed); dead-letter now

Handlers raise these (or subclasses of them); the worker also retries the built-in
``ConnectionError``/``TimeoutError``/``OSError`` and gives up at once on ``LookupError``,
``ValueError`` and ``TypeError`` (a payload field or a referenced row missing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Handler", "OutboxError", "OutboxItem", "PermanentError", "RetryableError"]


class OutboxError(Exception):
    """Root of the errors a handler raises to tell the worker how its side effect went."""


class RetryableError(OutboxError):
    """The side effect did not happen this time; the worker tries again after a backoff."""


class PermanentError(OutboxError):
    """The side effect can never happen; the worker dead-letters the message at once."""


@dataclass(frozen=True)
class OutboxItem:
    """A claimed message, detached from any session."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int


class Handler(Protocol):
    """Performs one message's side effect, opening its own short sessions as needed."""

    def __call__(self, sessions: sessionmaker[Session], item: OutboxItem, /) -> None: ...
