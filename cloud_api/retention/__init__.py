"""Privacy and housekeeping in the cloud's database.

- the retention job (:func:`run_retention`, every ``retention_sweep_seconds`` in the API
  process): plates blanked in gate events ``plate_retention_days`` after the event and in
  bookings that long after the stay ended (times, amounts and ids stay for the accounting);
  change-feed rows trimmed once every gate applied them and they are past the catch-up horizon;
  dead letters deleted after ``dead_letter_retention_days``;
- a customer's erasure of their own data (:func:`erase_customer`, ``DELETE /me/data``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from cloud_api.retention._erasure import Erased, ErasureRefused, check_erasable, erase_customer
from cloud_api.retention._plates import (
    BLANK_PLATE,
    blank_booking_plates,
    blank_event_plates,
    scrub_plates,
)
from cloud_api.retention._trim import trim_change_feed, trim_dead_letters, trimmable_seq

__all__ = [
    "BLANK_PLATE",
    "Erased",
    "ErasureRefused",
    "RetentionRules",
    "Swept",
    "blank_booking_plates",
    "blank_event_plates",
    "check_erasable",
    "erase_customer",
    "run_retention",
    "scrub_plates",
    "trim_change_feed",
    "trim_dead_letters",
    "trimmable_seq",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionRules:
    plates: timedelta = timedelta(days=30)
    dead_letters: timedelta = timedelta(days=30)


@dataclass(frozen=True)
class Swept:
    event_plates: int
    booking_plates: int
    feed_rows: int
    dead_letters: int


def run_retention(sessions: sessionmaker[Session], rules: RetentionRules, now: datetime) -> Swept:
    """One retention round, each step in its own transaction (a failure keeps the earlier)."""
    with sessions.begin() as session:
        events = blank_event_plates(session, now - rules.plates)
    with sessions.begin() as session:
        bookings = blank_booking_plates(session, now, rules.plates)
    with sessions.begin() as session:
        feed = trim_change_feed(session)
    with sessions.begin() as session:
        dead = trim_dead_letters(session, now - rules.dead_letters)
    swept = Swept(events, bookings, feed, dead)
    if any((events, bookings, feed, dead)):
        log.info(
            "retention: %d event plates, %d booking plates blanked; %d feed rows, "
            "%d dead letters deleted",
            events,
            bookings,
            feed,
            dead,
        )
    return swept
