"""Errors of the booking core; the API maps them to HTTP answers with a reason code.

BookingError
├── NotFound (also LookupError)        → 404 (or 422 for a referenced lot in a body)
├── InvalidRequest (also ValueError)   → 422
├── Conflict                           → 409 (space taken, wrong state)
└── TooMany                            → 429 (a per-customer limit, e.g. unpaid holds)
"""

from __future__ import annotations

__all__ = ["BookingError", "Conflict", "InvalidRequest", "NotFound", "TooMany"]


class BookingError(Exception):
    """Root of the booking core's errors; ``reason`` is a stable machine-readable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail or reason


class NotFound(BookingError, LookupError):
    pass


class InvalidRequest(BookingError, ValueError):
    pass


class Conflict(BookingError):
    pass


class TooMany(BookingError):
    pass
