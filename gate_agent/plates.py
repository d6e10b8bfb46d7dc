"""Plate text: normalisation, lookalike groups and the fuzzy match.

Pure functions. A cached plate matches a read exactly, or fuzzily when it is within one lookalike
substitution (tier 1) or, failing that, one edit (tier 2) — and only when exactly one cached plate
sits in the first non-empty tier. Two or more in that tier is ambiguous: the lane must not guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from gate_agent.domain import Match, MatchKind

__all__ = [
    "LOOKALIKE_GROUPS",
    "index_keys",
    "is_one_edit",
    "is_one_lookalike",
    "lookalike_key",
    "match",
    "normalise",
    "query_keys",
]

LOOKALIKE_GROUPS: tuple[str, ...] = ("0ODQ", "1I", "2Z", "5S", "8B", "6G")
_CANON = {ch: group[0] for group in LOOKALIKE_GROUPS for ch in group}
_CANON_TABLE = str.maketrans(_CANON)
_NOT_PLATE = re.compile(r"[^0-9A-Z]")


def normalise(text: str) -> str:
    """Upper-case and keep letters and digits only ("ab-12 c" → "AB12C")."""
    return _NOT_PLATE.sub("", text.upper())


def lookalike_key(plate: str) -> str:
    """Map each character to its lookalike group's representative ("O8S" → "085")."""
    return plate.translate(_CANON_TABLE)


def _deletions(key: str) -> set[str]:
    return {key[:i] + key[i + 1 :] for i in range(len(key))}


def index_keys(plate: str) -> set[str]:
    """Keys under which a cached plate is indexed: its lookalike key and each one-deletion of it.

    Two strings within one edit always share one of these keys (the deletion-neighbourhood trick),
    so a read's :func:`query_keys` finds every possibly-near cached plate with indexed lookups.
    """
    key = lookalike_key(plate)
    return {key} | _deletions(key)


def query_keys(read: str) -> set[str]:
    """Keys to look up for a read: the same neighbourhood as :func:`index_keys`."""
    return index_keys(read)


def is_one_lookalike(a: str, b: str) -> bool:
    """Exactly one position differs and the two characters are lookalikes."""
    if len(a) != len(b):
        return False
    diffs = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
    return len(diffs) == 1 and _CANON.get(diffs[0][0], "") == _CANON.get(diffs[0][1], "?")


def is_one_edit(a: str, b: str) -> bool:
    """Levenshtein distance exactly 1 (one substitution, insertion or deletion)."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def match(read: str, cached: Iterable[str]) -> Match:
    """Match a normalised read against nearby cached plates (usually from an index lookup)."""
    near = set(cached)
    if read in near:
        return Match(MatchKind.EXACT, read)
    for tier in (is_one_lookalike, is_one_edit):
        hits = sorted(p for p in near if tier(read, p))
        if len(hits) == 1:
            return Match(MatchKind.FUZZY, hits[0])
        if hits:
            return Match(MatchKind.AMBIGUOUS, None, tuple(hits))
    return Match(MatchKind.NONE)
