"""Stripe's webhook signature scheme, implemented here so both providers share it.

Header: ``Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`` where each ``v1`` is the
HMAC-SHA256 of ``"{t}.{raw body}"`` keyed with the endpoint secret. Several ``v1`` values appear
while a secret is being rolled; one match is enough. Timestamps older (or newer) than the tolerance
are refused so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = [
    "DEFAULT_TOLERANCE",
    "SIGNATURE_HEADER",
    "InvalidSignature",
    "StaleSignature",
    "WebhookSignatureError",
    "compute_signature",
    "signature_header",
    "verify_signature",
]

SIGNATURE_HEADER = "Stripe-Signature"
DEFAULT_TOLERANCE = 300
_SCHEME = "v1"


class WebhookSignatureError(ValueError):
    """The webhook cannot be trusted; the request must have no effect."""


class InvalidSignature(WebhookSignatureError):
    """Header missing or malformed, or no ``v1`` signature matches the body."""


class StaleSignature(WebhookSignatureError):
    """The signature is well formed but its timestamp is outside the tolerance."""


def compute_signature(payload: bytes, secret: str, timestamp: int) -> str:
    signed = str(timestamp).encode("ascii") + b"." + payload
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def signature_header(payload: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` value for ``payload`` (used by the local provider and tests)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return f"t={ts},{_SCHEME}={compute_signature(payload, secret, ts)}"


def _parse_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            if not value.isdigit():
                raise InvalidSignature("timestamp is not an integer")
            timestamp = int(value)
        elif key == _SCHEME and value:
            signatures.append(value)
    if timestamp is None:
        raise InvalidSignature("no timestamp in signature header")
    if not signatures:
        raise InvalidSignature("no v1 signature in signature header")
    return timestamp, signatures


def verify_signature(
    payload: bytes,
    header: str | None,
    secret: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> int:
    """Check ``header`` against ``payload``; return the signed timestamp.

    Raises :class:`InvalidSignature` or :class:`StaleSignature`. Every candidate is compared in
    constant time with :func:`hmac.compare_digest`.
    """
    if not secret:
        raise InvalidSignature("no webhook secret configured")
    if not header:
        raise InvalidSignature("missing signature header")
    timestamp, candidates = _parse_header(header)
    expected = compute_signature(payload, secret, timestamp)
    matched = False
    for candidate in candidates:
        # no short-circuit: compare every candidate so timing does not reveal which one matched
        matched |= hmac.compare_digest(expected.encode("ascii"), candidate.encode("utf-8"))
    if not matched:
        raise InvalidSignature("no signature matches the payload")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise StaleSignature(f"timestamp {timestamp} is outside the {tolerance}s tolerance")
    return timestamp
