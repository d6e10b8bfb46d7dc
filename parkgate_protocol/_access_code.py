"""Booking access codes: the short signed token a driver's phone shows the lane camera (a QR code)
or types on the lane's code-entry page.

Part of the protocol (pure, stdlib ``hmac`` only). A code is six dot-separated fields::

    v1.<lot>.<booking>.<exp>.<kid>.<mac>

``lot`` is the lot id, ``booking`` the reservation id, ``exp`` the Unix second after which the
code is refused (the booking's end plus :data:`CODE_SLACK`: the code is worth its booking's
window, not forever), ``kid`` the id of the lot's key that signed it and ``mac`` the first
:data:`MAC_BYTES` bytes of HMAC-SHA256 over ``v1.<lot>.<booking>.<exp>.<kid>`` under that key,
in lower-case base32 without padding. About 60 characters: a QR code a phone shows well.

Why a symmetric MAC is enough: the key is made per lot by the cloud and only ever leaves it for
that lot's gate (on the sync feed, over TLS); nobody else has to verify a code, so a public-key
signature would buy nothing but a longer code. A code signed for one lot says nothing at
another (each lot has its own keys, and the lot is checked first).

Verification (:func:`check_access_code`) answers one of the refusal reasons in order:
``code_invalid`` (garbled, unknown or retired key, wrong MAC), ``code_other_lot`` (a well-formed
code naming another lot: its MAC cannot be checked here, so it is refused for that), and
``code_expired`` (past ``exp``). What the booking itself allows (window, payment, passback) is the
gate's decision, not the code's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = [
    "CODE_SLACK",
    "CODE_VERSION",
    "MAC_BYTES",
    "MAX_CODE_LENGTH",
    "AccessCode",
    "AccessCodeError",
    "SigningKey",
    "check_access_code",
    "parse_access_code",
    "sign_access_code",
]

CODE_VERSION: Final = "v1"
MAC_BYTES: Final = 16  # 128 bits of HMAC-SHA256
CODE_SLACK: Final = timedelta(hours=6)  # a code outlives its booking's end by this much at most
MAX_CODE_LENGTH: Final = 200  # longer text is not a code (and is not looked at further)
_ID = r"[A-Za-z0-9_-]{1,64}"
_SHAPE = re.compile(
    rf"^v1\.(?P<lot>{_ID})\.(?P<booking>{_ID})\.(?P<exp>[0-9]{{1,12}})"
    rf"\.(?P<kid>[A-Za-z0-9_-]{{1,16}})\.(?P<mac>[a-z2-7]{{26}})$"
)


class AccessCodeError(ValueError):
    """A code refused; ``reason`` is ``code_invalid``, ``code_other_lot`` or ``code_expired``.
    The message never echoes the code (it is a bearer credential)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One of a lot's code keys: its id, its secret bytes and, for a key being rotated out,
    the moment it stops being accepted (None: the current key)."""

    kid: str
    secret: bytes
    retires_at: datetime | None = None

    def __repr__(self) -> str:  # the secret never reaches a log line
        return f"SigningKey(kid={self.kid!r}, retires_at={self.retires_at!r})"

    def usable_at(self, now: datetime) -> bool:
        return self.retires_at is None or now < self.retires_at


@dataclass(frozen=True, slots=True)
class AccessCode:
    """A parsed code (its MAC not yet checked unless it came from :func:`check_access_code`)."""

    lot_id: str
    booking_id: str
    expires_at: datetime
    kid: str
    mac: str

    @property
    def signed_part(self) -> str:
        exp = int(self.expires_at.timestamp())
        return f"{CODE_VERSION}.{self.lot_id}.{self.booking_id}.{exp}.{self.kid}"


def _mac(secret: bytes, signed_part: str) -> str:
    digest = hmac.new(secret, signed_part.encode(), hashlib.sha256).digest()[:MAC_BYTES]
    return base64.b32encode(digest).decode().rstrip("=").lower()


def sign_access_code(key: SigningKey, *, lot_id: str, booking_id: str, expires_at: datetime) -> str:
    """The code for ``booking_id`` at ``lot_id``, refused after ``expires_at`` (whole seconds)."""
    if expires_at.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    exp = datetime.fromtimestamp(int(expires_at.timestamp()), UTC)
    code = AccessCode(lot_id, booking_id, exp, key.kid, "")
    text = f"{code.signed_part}.{_mac(key.secret, code.signed_part)}"
    parse_access_code(text)  # ids outside the alphabet fail here, not at the gate
    return text


def parse_access_code(text: str) -> AccessCode:
    """The fields of a well-formed code (surrounding blanks ignored); ``code_invalid`` if not."""
    text = text.strip()
    found = _SHAPE.match(text) if len(text) <= MAX_CODE_LENGTH else None
    if found is None:
        raise AccessCodeError("code_invalid", "not an access code")
    return AccessCode(
        lot_id=found["lot"],
        booking_id=found["booking"],
        expires_at=datetime.fromtimestamp(int(found["exp"]), UTC),
        kid=found["kid"],
        mac=found["mac"],
    )


def check_access_code(
    text: str, *, lot_id: str, keys: Iterable[SigningKey], now: datetime
) -> AccessCode:
    """The code, verified for ``lot_id`` with one of ``keys`` usable at ``now``; else
    :class:`AccessCodeError` with the reason (see the module docstring for the order)."""
    code = parse_access_code(text)
    if code.lot_id != lot_id:
        raise AccessCodeError("code_other_lot", "the code is for another lot")
    key = next((k for k in keys if k.kid == code.kid and k.usable_at(now)), None)
    if key is None:
        raise AccessCodeError("code_invalid", "signed with a key this lot does not hold")
    if not hmac.compare_digest(_mac(key.secret, code.signed_part), code.mac):
        raise AccessCodeError("code_invalid", "the signature does not match")
    if now > code.expires_at:
        raise AccessCodeError("code_expired", "the code is past its validity")
    return code
