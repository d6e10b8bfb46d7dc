"""Plate text: normalisation, index keys and the evidence-based match.

Pure functions. A cached plate matches a read exactly, or fuzzily when the read's own evidence
explains the one difference (see :func:`match`), and only when exactly one cached plate is so
explained. Two or more is ambiguous: the lane must not guess. A confident read of a different
plate is a different car, however near its plate is to a booking.

``LOOKALIKE_GROUPS`` only shapes the index keys (what the store looks up); which substitutions
count as lookalikes in matching comes from the recognizer's measured confusions
(``confusions.json``, written by ``scripts/derive_confusions.py``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from gate_agent.domain import Match, MatchKind

__all__ = [
    "CONFUSIONS_FILE",
    "LOOKALIKE_BELOW",
    "LOOKALIKE_GROUPS",
    "UNSURE_BELOW",
    "explain",
    "index_keys",
    "is_one_edit",
    "lookalike_key",
    "lookalike_pairs",
    "match",
    "normalise",
    "query_keys",
]

LOOKALIKE_GROUPS: tuple[str, ...] = ("0ODQ", "1I", "2Z", "5S", "8B", "6G")  # index keys only
UNSURE_BELOW = 0.70  # a character read less sure than this may be any character
LOOKALIKE_BELOW = 0.95  # ... and a measured lookalike of the character read, below this
CONFUSIONS_FILE = Path(__file__).with_name("confusions.json")
_CANON = {ch: group[0] for group in LOOKALIKE_GROUPS for ch in group}
_CANON_TABLE = str.maketrans(_CANON)
_NOT_PLATE = re.compile(r"[^0-9A-Z]")
_LOOKALIKE_PRIOR = 4.0  # likelihood boost of a measured lookalike over any other substitution


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

    Two strings within one edit (or one adjacent transposition) always share one of these keys
    (the deletion-neighbourhood trick), so a read's :func:`query_keys` finds every possibly-near
    cached plate with indexed lookups.
    """
    key = lookalike_key(plate)
    return {key} | _deletions(key)


def query_keys(read: str) -> set[str]:
    """Keys to look up for a read: the same neighbourhood as :func:`index_keys`."""
    return index_keys(read)


def is_one_edit(a: str, b: str) -> bool:
    """Levenshtein distance exactly 1 (one substitution, insertion or deletion)."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


@cache
def lookalike_pairs(path: Path = CONFUSIONS_FILE) -> frozenset[frozenset[str]]:
    """The measured lookalike pairs (unordered), read once from the confusion table."""
    table = json.loads(path.read_text(encoding="utf-8"))
    return frozenset(frozenset(pair) for pair in table["lookalikes"])


@dataclass(frozen=True, slots=True)
class _Explained:
    plate: str
    reason: str
    score: float  # log-likelihood of the read given the plate, relative to the read itself
    support: float


def _confidences(read: str, char_confidences: Sequence[float]) -> tuple[float, ...]:
    """Per-character confidences; without them every character counts as sure (fail closed)."""
    if len(char_confidences) == len(read):
        return tuple(char_confidences)
    return (1.0,) * len(read)


def _unlikely(p: float) -> float:
    return math.log(max(1.0 - p, 1e-6)) - math.log(max(p, 1e-6))


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 1.0


def _substitution(
    read: str, confs: Sequence[float], plate: str, pairs: frozenset[frozenset[str]]
) -> _Explained | None:
    diffs = [i for i, (x, y) in enumerate(zip(read, plate, strict=True)) if x != y]
    agree = [c for i, c in enumerate(confs) if i not in diffs]
    if len(diffs) == 1:
        i = diffs[0]
        p, pair = confs[i], frozenset((read[i], plate[i]))
        what = f"{i + 1}:{read[i]}>{plate[i]} at {p:.2f}"
        if p < UNSURE_BELOW:
            return _Explained(plate, f"unsure {what}", _unlikely(p), _mean(agree))
        if pair in pairs and p < LOOKALIKE_BELOW:
            score = _unlikely(p) + math.log(_LOOKALIKE_PRIOR)
            return _Explained(plate, f"lookalike {what}", score, _mean(agree))
        return None
    if len(diffs) == 2 and diffs[1] == diffs[0] + 1:
        i, j = diffs
        swapped = read[i] == plate[j] and read[j] == plate[i]
        p = min(confs[i], confs[j])
        if swapped and p < UNSURE_BELOW:
            reason = (
                f"transposed {i + 1}-{j + 1}:{read[i]}{read[j]}>{plate[i]}{plate[j]} at {p:.2f}"
            )
            return _Explained(plate, reason, _unlikely(p), _mean(agree))
    return None


def _dropped(read: str, confs: Sequence[float], plate: str) -> _Explained | None:
    """The read lacks the plate's first or last character (a tight crop), and is unsure there."""
    if len(plate) != len(read) + 1:
        return None
    if plate[1:] == read and confs[0] < LOOKALIKE_BELOW:
        return _Explained(
            plate, f"dropped first {plate[0]} (edge at {confs[0]:.2f})", _unlikely(confs[0]), 1.0
        )
    if plate[:-1] == read and confs[-1] < LOOKALIKE_BELOW:
        return _Explained(
            plate, f"dropped last {plate[-1]} (edge at {confs[-1]:.2f})", _unlikely(confs[-1]), 1.0
        )
    return None


def explain(
    read: str,
    plate: str,
    char_confidences: Sequence[float] = (),
    pairs: frozenset[frozenset[str]] | None = None,
) -> tuple[str, float] | None:
    """Why ``plate`` could be what the camera saw as ``read``: (reason, score), or None."""
    found = _explain(read, _confidences(read, char_confidences), plate, pairs)
    return None if found is None else (found.reason, found.score)


def _explain(
    read: str,
    confs: Sequence[float],
    plate: str,
    pairs: frozenset[frozenset[str]] | None,
) -> _Explained | None:
    if len(plate) == len(read):
        return _substitution(read, confs, plate, lookalike_pairs() if pairs is None else pairs)
    return _dropped(read, confs, plate)


def match(
    read: str,
    cached: Iterable[str],
    char_confidences: Sequence[float] = (),
    *,
    pairs: frozenset[frozenset[str]] | None = None,
) -> Match:
    """Match a normalised read against nearby cached plates (usually from an index lookup).

    A cached plate other than the read matches only when the read's evidence explains the one
    difference: a single substitution at a position read below :data:`UNSURE_BELOW`, or below
    :data:`LOOKALIKE_BELOW` when the two characters are a measured lookalike pair; an adjacent
    transposition with one of the two below :data:`UNSURE_BELOW`; or a missing first/last
    character when the read's edge character is below :data:`LOOKALIKE_BELOW`. Explained
    candidates are ranked by the likelihood of the read given each; more than one is ambiguous.
    Without per-character confidences every character counts as sure: no fuzzy match.
    """
    near = set(cached)
    if read in near:
        return Match(MatchKind.EXACT, read, reason="exact")
    confs = _confidences(read, char_confidences)
    found = [e for p in sorted(near) if (e := _explain(read, confs, p, pairs)) is not None]
    found.sort(key=lambda e: e.score, reverse=True)
    if len(found) == 1:
        only = found[0]
        return Match(MatchKind.FUZZY, only.plate, reason=only.reason, support=only.support)
    if found:
        reasons = "; ".join(f"{e.plate}: {e.reason}" for e in found)
        return Match(
            MatchKind.AMBIGUOUS, None, tuple(e.plate for e in found), reason=f"several: {reasons}"
        )
    return Match(MatchKind.NONE, reason="no cached plate explained by the read")
