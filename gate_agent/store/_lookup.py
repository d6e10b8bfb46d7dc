"""The lane's hot path: what the cache knows about one plate read (in :mod:`gate_agent.store`).

Fixed SQL on the raw ``sqlite3`` cursor (prepared once per connection by its statement cache),
in up to three indexed statements, using :mod:`gate_agent.plates` for keys and matching:

1. The read's lookalike key (one ``plate_keys`` seek) joined to those plates' reservations, list
   entries, presence and the payments of the stay they are on. An exact match there is final
   (most reads at a gate are exact, so most lookups end here).
2. Otherwise the remaining neighbourhood keys (one deletion each), plates only; ``plates.match``
   over both sets, weighing the read's per-character confidences, gives the answer: a fuzzy match
   must be the only plate the read explains, so it is never decided on the first set alone.
3. A fuzzy match fetches that plate's facts by primary key/index.

The statements are separate snapshots: a write landing between them can at worst hand the lane
facts a few microseconds newer than the match, which a decision can never tell apart from a read
taken a moment later. ``bench/lookup.py`` measures this path with 1,000,000 reservations.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from functools import lru_cache
from typing import Any

from gate_agent import plates
from gate_agent.domain import CandidateFacts, CharOdds, Match, MatchKind
from gate_agent.store._rows import (
    list_entry_from_row,
    presence_from_row,
    reservation_from_row,
    stay_payment_from_row,
)

__all__ = ["facts_from_rows", "lookup"]

Fetch = Callable[[str, Sequence[object]], list[Any]]

_FACT_COLUMNS = (  # (alias, source, columns): rows are (plate, alias, *columns), padded to 8
    (
        "r",
        "reservations AS r",
        "r.id, r.plate, r.starts_at, r.ends_at, r.status, "
        "r.amount_owed_cents, r.currency, r.space_label",
    ),
    (
        "l",
        "list_entries AS l",
        "l.plate, l.kind, l.valid_from, l.valid_until, l.note, l.entry_id, l.category, l.lanes",
    ),
    (
        "p",
        "presence AS p",
        "p.plate, p.visit_id, p.entered_at, p.reservation_id, p.kind, NULL, NULL, NULL",
    ),
    (  # the payments of the stay the plate is on (rows only for a car inside that paid)
        "s",
        "presence AS s_p",
        "s.stay_id, s.paid_cents, s.paid_through, s.currency, s.payment_id, NULL, NULL, NULL",
    ),
)


def _facts_sql(*, by_key: bool) -> str:
    selects = []
    for alias, source, columns in _FACT_COLUMNS:
        plate = "s_p.plate" if alias == "s" else f"{alias}.plate"
        paid = " JOIN stay_payments AS s ON s.stay_id = s_p.visit_id" if alias == "s" else ""
        where = (
            f"plate_keys AS k JOIN {source} ON {plate} = k.plate{paid} WHERE k.key = ?1"
            if by_key
            else f"{source}{paid} WHERE {plate} = ?1"
        )
        selects.append(f"SELECT {plate}, '{alias}', {columns} FROM {where}")
    return "\nUNION ALL\n".join(selects)


FACTS_BY_KEY = _facts_sql(by_key=True)
FACTS_BY_PLATE = _facts_sql(by_key=False)


@lru_cache(maxsize=16)
def plates_by_keys_sql(n_keys: int) -> str:
    """Plates under any of ``n_keys`` keys: one seek each (measured faster than ``IN (...)``,
    which sorts the values into an ephemeral table first)."""
    return " UNION ALL ".join(
        f"SELECT plate FROM plate_keys WHERE key = ?{i}" for i in range(1, n_keys + 1)
    )


def lookup(
    fetch: Fetch,
    read_text: str,
    confidence: float,
    known: Container[str] | None = None,
    char_confidences: Sequence[float] = (),
    char_odds: Sequence[CharOdds] = (),
) -> CandidateFacts:
    """Match a read against the cache and gather the matched plate's facts (see module doc).

    ``known`` (the store's :class:`~gate_agent.store._filter.KeyFilter`) says which index keys
    may exist; keys it rules out are not looked up, which makes an unknown car's lookup cheap.
    ``char_confidences`` and ``char_odds`` are the read's, one per character of ``read_text``
    once normalised (see :func:`gate_agent.plates.match`).
    """
    read = plates.normalise(read_text)
    if not read:
        return CandidateFacts(read, confidence, Match(MatchKind.NONE, reason="nothing read"))
    if len(char_confidences) != len(read):
        char_confidences = ()  # not aligned with the normalised text: count every character sure
    if len(char_odds) != len(read):
        char_odds = ()
    key = plates.lookalike_key(read)
    near: set[str] = set()
    if known is None or key in known:
        rows = fetch(FACTS_BY_KEY, (key,))
        if any(row[0] == read for row in rows):
            return facts_from_rows(
                read, confidence, rows, Match(MatchKind.EXACT, read, (), "exact")
            )
        near.update(row[0] for row in rows)
    others = tuple(k for k in plates.query_keys(read) if k != key and (known is None or k in known))
    if others:
        near.update(row[0] for row in fetch(plates_by_keys_sql(len(others)), others))
    found = plates.match(read, near, char_confidences, char_odds)
    if found.plate is None:
        return CandidateFacts(read, confidence, found)
    return facts_from_rows(read, confidence, fetch(FACTS_BY_PLATE, (found.plate,)), found)


def facts_from_rows(
    read: str, confidence: float, rows: Sequence[tuple[Any, ...]], found: Match
) -> CandidateFacts:
    """Gather the facts of the plate ``found`` from fact rows."""
    if found.plate is None:
        return CandidateFacts(read, confidence, found)
    mine = [row for row in rows if row[0] == found.plate]
    reservations = [reservation_from_row(row[2:10]) for row in mine if row[1] == "r"]
    reservations.sort(key=lambda r: r.starts_at)
    entries = [list_entry_from_row(row[2:10]) for row in mine if row[1] == "l"]
    entries.sort(key=lambda e: (e.kind, e.entry_id or ""))
    presence = [presence_from_row(row[2:7]) for row in mine if row[1] == "p"]
    paid = [stay_payment_from_row(row[2:7]) for row in mine if row[1] == "s"]
    return CandidateFacts(
        read_text=read,
        confidence=confidence,
        match=found,
        reservations=tuple(reservations),
        list_entries=tuple(entries),
        presence=presence[0] if presence else None,
        stay_payment=paid[0] if paid else None,
    )
