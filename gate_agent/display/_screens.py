"""What a lane's screen says: pure functions from one pass's facts to a :class:`Screen`.

Every reason code maps to a headline and what to do next; a reason this module does not know (a
newer agent's, or one added later) shows "Please wait — an operator has been called" on a denial
and a plain welcome/goodbye on an opening, so a new reason never breaks the display. A screen
only ever carries the current pass: it holds no history.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import Any

from gate_agent.display._catalogue import Catalogue
from gate_agent.domain import Direction

__all__ = ["PassView", "Screen", "ScreenState", "idle_screen", "money", "screen_for_pass"]


class ScreenState(StrEnum):
    IDLE = "idle"
    READING = "reading"
    OPEN = "open"
    DENIED = "denied"
    OWES = "owes"
    HELP = "help"


@dataclass(frozen=True, slots=True)
class Screen:
    state: ScreenState
    headline: str
    detail: str = ""
    hint: str = ""
    pay_url: str | None = None  # shown as a QR code (the web layer draws it)
    offline: str = ""  # the offline notice, when the lot cannot reach the cloud
    language: str = "en"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class PassView:
    """What the screen may say about one decided pass (and nothing about any other)."""

    reason: str
    open: bool
    direction: Direction
    plate: str | None = None
    amount_owed_cents: int = 0
    currency: str = "EUR"
    space_label: str | None = None
    starts_at: datetime | None = None


# denial reason -> (headline, what to do next)
DENIALS: dict[str, tuple[str, str]] = {
    "no_reservation": ("no_booking", "no_booking_hint"),
    "not_paid": ("not_paid", "not_paid_hint"),
    "too_early": ("too_early", "too_early_hint"),
    "expired": ("expired", "expired_hint"),
    "cancelled": ("cancelled", "cancelled_hint"),
    "already_inside": ("already_inside", "already_inside_hint"),
    "low_confidence": ("unreadable", "unreadable_hint"),
    "ambiguous_match": ("unreadable", "unreadable_hint"),
    "no_plate": ("unreadable", "unreadable_hint"),
    "denylisted": ("refused", "refused_hint"),
    "lot_full": ("lot_full", "lot_full_hint"),
    "code_invalid": ("code_invalid", "code_invalid_hint"),
    "code_other_lot": ("code_other_lot", "code_invalid_hint"),
    "code_expired": ("expired", "expired_hint"),
    "code_cancelled": ("cancelled", "cancelled_hint"),
    "code_used": ("code_used", "already_inside_hint"),
}
OWING = frozenset({"payment_due"})
VISITOR = frozenset({"drive_up"})
SYMBOLS = {"EUR": "€", "GBP": "£", "USD": "$"}


def money(cents: int, currency: str, cat: Catalogue) -> str:
    cents = max(0, cents)
    units, rest = divmod(cents, 100)
    return f"{units}{cat.decimal_separator}{rest:02d} {SYMBOLS.get(currency, currency)}"


def when(at: datetime, now: datetime, tz: tzinfo | None) -> str:
    """A start time as a driver reads it: ``14:30`` today, ``2026-12-24 14:30`` another day."""
    local, today = at.astimezone(tz), now.astimezone(tz)
    if local.date() == today.date():
        return local.strftime("%H:%M")
    return local.strftime("%Y-%m-%d %H:%M")


def idle_screen(cat: Catalogue, lot: str, free_spaces: int | None = None) -> Screen:
    detail = "" if free_spaces is None else cat.text("idle_free", free=free_spaces)
    return Screen(ScreenState.IDLE, cat.text("idle", lot=lot), detail, language=cat.language)


def reading_screen(cat: Catalogue) -> Screen:
    return Screen(
        ScreenState.READING, cat.text("reading"), cat.text("reading_hint"), language=cat.language
    )


def help_screen(cat: Catalogue) -> Screen:
    headline, hint = cat.text("help_called"), cat.text("help_called_hint")
    return Screen(ScreenState.HELP, headline, hint, language=cat.language)


def screen_for_pass(
    view: PassView,
    cat: Catalogue,
    *,
    pay_url: str | None,
    now: datetime,
    tz: tzinfo | None = None,
) -> Screen:
    """The screen for a decided pass; ``pay_url`` is the pay-by-plate link (None: pay station)."""
    if view.open:
        return _opened(view, cat)
    if view.reason in OWING:
        amount = money(view.amount_owed_cents, view.currency, cat)
        hint = cat.text("owes_hint_qr" if pay_url else "owes_hint_station")
        return Screen(
            ScreenState.OWES,
            cat.text("owes", amount=amount),
            hint=hint,
            pay_url=pay_url,
            language=cat.language,
        )
    headline, hint = DENIALS.get(view.reason, ("operator_called", ""))
    start = "" if view.starts_at is None else when(view.starts_at, now, tz)
    return Screen(
        ScreenState.DENIED,
        cat.text(headline, plate=view.plate or "", start=start),
        hint=cat.text(hint) if hint else "",
        language=cat.language,
    )


def _opened(view: PassView, cat: Catalogue) -> Screen:
    if view.direction is Direction.EXIT:
        if view.reason == "paid":
            detail = cat.text("goodbye_paid")
        elif view.amount_owed_cents > 0:
            amount = money(view.amount_owed_cents, view.currency, cat)
            detail = cat.text("goodbye_charge", amount=amount)
        else:
            detail = cat.text("goodbye_safe")
        return Screen(ScreenState.OPEN, cat.text("goodbye"), detail, language=cat.language)
    headline = cat.text("welcome_plate", plate=view.plate) if view.plate else cat.text("welcome")
    if view.space_label:
        detail = cat.text("space", space=view.space_label)
    elif view.reason in VISITOR:
        detail = cat.text("visitor")
    else:
        detail = ""
    return Screen(ScreenState.OPEN, headline, detail, language=cat.language)
