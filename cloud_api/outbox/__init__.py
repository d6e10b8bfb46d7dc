"""The outbox: work that must leave the database (payment calls, emails), written in the same
transaction as the change (:func:`enqueue`) and run later by the :class:`OutboxWorker`.

The worker knows no concrete side effect: a daemon's composition root gives it a table of
``{kind: Handler}``; handler modules (``cloud_api.notifications``, ``cloud_api.payments.handlers``)
depend on this package, never the reverse.
"""

from cloud_api.outbox._contract import (
    Handler,
    OutboxError,
    OutboxItem,
    PermanentError,
    RetryableError,
)
from cloud_api.outbox._enqueue import enqueue
from cloud_api.outbox._worker import DeadLetter, OutboxWorker, OutcomeUnknown, RetryPolicy

__all__ = [
    "DeadLetter",
    "Handler",
    "OutboxError",
    "OutboxItem",
    "OutboxWorker",
    "OutcomeUnknown",
    "PermanentError",
    "RetryPolicy",
    "RetryableError",
    "enqueue",
]
