"""Plate text: normalisation, index keys and the evidence-based match.

Pure functions (the confusion table is read once, on first use). A cached plate matches a read
exactly, or fuzzily when the read's own evidence explains the one difference (see
:func:`match`), and only when exactly one cached plate is so explained. Two or more is
ambiguous: the lane must not guess. A confident read of a different plate is a different car,
however near its plate is to a booking; so is a read one measured lookalike away.

``LOOKALIKE_GROUPS`` only shapes the index keys (what the store looks up); which substitutions
count as lookalikes in matching comes from the recognizer's measured confusions
(``confusions.json``, written by ``python -m bench.confusions --write``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from gate_agent.domain import CharOdds, Match, MatchKind

__all__ = [
    "ALTERNATIVE_AT_LEAST",
    "ALTERNATIVE_RATIO",
    "CONFUSIONS_FILE",
    "LOOKALIKE_GROUPS",
    "UNSURE_BELOW",
    "differences",
    "explain",
    "index_keys",
    "is_one_edit",
    "is_transposition",
    "lookalike_key",
    "lookalike_pairs",
    "match",
    "merge_odds",
    "normalise",
    "query_keys",
    "same_plate",
]

LOOKALIKE_GROUPS: tuple[str, ...] = ("0ODQ", "1I", "2Z", "5S", "8B", "6G")  # index keys only
ALTERNATIVE_AT_LEAST = 0.01  # with the OCR's odds: the cached character had at least this
ALTERNATIVE_RATIO = 0.1  # ... and at least this share of the odds of the character read
UNSURE_BELOW = 0.70  # without them: a character read less sure than this may be any character
ODDS_FLOOR = 0.001  # odds below this are not kept (PlateRead.char_odds)
CONFUSIONS_FILE = Path(__file__).with_name("confusions.json")
_CANON = {ch: group[0] for group in LOOKALIKE_GROUPS for ch in group}
_CANON_TABLE = str.maketrans(_CANON)
_NOT_PLATE = re.compile(r"[^0-9A-Z]")
_ONE_CHARACTER = str.maketrans("O", "0")  # the letter O and the digit 0 are one character
_Pairs = frozenset[frozenset[str]]


def normalise(text: str) -> str:
    """Upper-case and keep letters and digits only ("ab-12 c" → "AB12C")."""
    return _NOT_PLATE.sub("", text.upper())


def same_plate(a: str, b: str) -> bool:
    """Normalised plates that are one plate: equal once the letter O counts as the digit 0.

    Many plate fonts draw them alike, the dev labels do not tell them apart (the EU set), and
    they are the recognizer's most frequent confusion; a booking typed with either is the car.
    """
    return a.translate(_ONE_CHARACTER) == b.translate(_ONE_CHARACTER)


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
    support: float  # mean confidence of the positions that agree


def _confidences(read: str, char_confidences: Sequence[float]) -> tuple[float, ...]:
    """Per-character confidences; without them every character counts as sure (fail closed)."""
    if len(char_confidences) == len(read):
        return tuple(char_confidences)
    return (1.0,) * len(read)


def _aligned(read: str, char_odds: Sequence[CharOdds]) -> Sequence[CharOdds]:
    """The odds when they describe this read (one per character, each led by it), else ()."""
    if len(char_odds) != len(read):
        return ()
    if any(not odds or odds[0][0] != ch for ch, odds in zip(read, char_odds, strict=True)):
        return ()
    return char_odds


def _odds_of(odds: CharOdds, char: str) -> float:
    return next((p for c, p in odds if c == char), 0.0)


def _log_ratio(q: float, p: float) -> float:
    return math.log(max(q, 1e-6)) - math.log(max(p, 1e-6))


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 1.0


def _position(
    read: str, plate: str, i: int, conf: float, odds: Sequence[CharOdds], pairs: _Pairs
) -> float | None:
    """How likely the plate's character at ``i`` is where the read has another (log ratio to
    the character read), or None when the read's evidence does not allow it."""
    if frozenset((read[i], plate[i])) in pairs:
        return None  # a known confusion: the OCR's doubt there is no evidence (see match)
    if odds:
        q = _odds_of(odds[i], plate[i])
        if q < ALTERNATIVE_AT_LEAST or q < ALTERNATIVE_RATIO * conf:
            return None
        return _log_ratio(q, conf)
    return _log_ratio(1.0 - conf, conf) if conf < UNSURE_BELOW else None


def differences(a: str, b: str) -> list[int]:
    """The positions where two plates of one length differ."""
    return [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]


def is_transposition(a: str, b: str, diffs: Sequence[int]) -> bool:
    """``diffs`` (:func:`differences` of ``a`` and ``b``) are two neighbours swapped."""
    return (
        len(diffs) == 2
        and diffs[1] == diffs[0] + 1
        and a[diffs[0]] == b[diffs[1]]
        and a[diffs[1]] == b[diffs[0]]
    )


def _substitution(
    read: str, confs: Sequence[float], odds: Sequence[CharOdds], plate: str, pairs: _Pairs
) -> _Explained | None:
    diffs = differences(read, plate)
    swapped = is_transposition(read, plate, diffs)
    if len(diffs) != 1 and not swapped:
        return None
    scores = [_position(read, plate, i, confs[i], odds, pairs) for i in diffs]
    if any(score is None for score in scores):
        return None
    what = ", ".join(f"{i + 1}:{read[i]}>{plate[i]} at {confs[i]:.2f}" for i in diffs)
    if odds:
        what += (
            " (OCR gave "
            + ", ".join(f"{plate[i]} {_odds_of(odds[i], plate[i]):.3f}" for i in diffs)
            + ")"
        )
    kind = "transposed" if swapped else "unsure"
    agree = [c for i, c in enumerate(confs) if i not in diffs]
    return _Explained(plate, f"{kind} {what}", sum(s for s in scores if s), _mean(agree))


def _edge(read: str, confs: Sequence[float], plate: str) -> _Explained | None:
    """The read lacks the plate's first or last character (a crop that clipped it), or has one
    more there (a screw, a sticker, the plate's frame), and is unsure at that edge."""
    if abs(len(read) - len(plate)) != 1:
        return None
    extra = len(read) > len(plate)
    longer, shorter = (read, plate) if extra else (plate, read)
    for edge, i, rest in (("first", 0, longer[1:]), ("last", -1, longer[:-1])):
        if rest == shorter and confs[i] < UNSURE_BELOW:
            what = (
                f"extra {edge} {read[i]} (read"
                if extra
                else f"dropped {edge} {plate[i]} (edge read"
            )
            agree = confs[1:] if i == 0 else confs[:-1]
            score = _log_ratio(1.0 - confs[i], confs[i])
            return _Explained(plate, f"{what} at {confs[i]:.2f})", score, _mean(agree))
    return None


def _explain(
    read: str, confs: Sequence[float], odds: Sequence[CharOdds], plate: str, pairs: _Pairs
) -> _Explained | None:
    if len(plate) == len(read):
        return _substitution(read, confs, odds, plate, pairs)
    return _edge(read, confs, plate)


def explain(
    read: str,
    plate: str,
    char_confidences: Sequence[float] = (),
    char_odds: Sequence[CharOdds] = (),
) -> tuple[str, float] | None:
    """Why ``plate`` could be what the camera saw as ``read``: (reason, score), or None."""
    confs = _confidences(read, char_confidences)
    found = _explain(read, confs, _aligned(read, char_odds), plate, lookalike_pairs())
    return None if found is None else (found.reason, found.score)


def merge_odds(odds: Sequence[CharOdds], weights: Sequence[float] | None = None) -> CharOdds:
    """The weighted mean of several looks' odds at one position, likeliest first."""
    if not odds:
        return ()
    weights = weights or [1.0] * len(odds)
    total = sum(weights) or 1.0
    merged: dict[str, float] = {}
    for look, weight in zip(odds, weights, strict=True):
        for char, p in look:
            merged[char] = merged.get(char, 0.0) + p * weight / total
    kept = [(c, p) for c, p in merged.items() if p >= ODDS_FLOOR]
    return tuple(sorted(kept, key=lambda cp: (-cp[1], cp[0])))


def match(
    read: str,
    cached: Iterable[str],
    char_confidences: Sequence[float] = (),
    char_odds: Sequence[CharOdds] = (),
    *,
    pairs: frozenset[frozenset[str]] | None = None,
) -> Match:
    """Match a normalised read against nearby cached plates (usually from an index lookup).

    Exact (O and 0 counting as one character, :func:`same_plate`), or else a cached plate that
    the read's own evidence explains, and only when it is the only such plate:

    - a single substitution, or an adjacent transposition, where the read was unsure: with the
      OCR's odds (``char_odds``; the lane always has them) the cached plate's character got at
      least :data:`ALTERNATIVE_AT_LEAST` and at least :data:`ALTERNATIVE_RATIO` of the odds of
      the character read at that position; without them, the character read is below
      :data:`UNSURE_BELOW`;
    - never a substitution between a measured lookalike pair (:func:`lookalike_pairs`): the
      recognizer confuses those, so a *correct* read of one carries odds for the other too
      (on the dev photos 1% of correct characters gave their lookalike that much, against
      0.05% for any other character), and a neighbour's booking one lookalike away is exactly
      the plate an impostor would have;
    - a missing first or last character when the read's edge character is below
      :data:`UNSURE_BELOW` (a crop that clipped the plate), or an extra first or last character
      read below :data:`UNSURE_BELOW` (a screw, a sticker or the frame read as a character).

    Explained candidates are ranked by the likelihood of the read given each (relative to the
    read itself); two or more is ambiguous. Without per-character confidences every character
    counts as sure: no fuzzy match. A confident read of a different plate is a different car.
    """
    near = set(cached)
    if read in near:
        return Match(MatchKind.EXACT, read, reason="exact")
    same = sorted(p for p in near if same_plate(p, read))
    if same:
        return Match(MatchKind.EXACT, same[0], reason="exact (O≡0)")
    confs = _confidences(read, char_confidences)
    odds = _aligned(read, char_odds)
    known = lookalike_pairs() if pairs is None else pairs
    found = [e for p in sorted(near) if (e := _explain(read, confs, odds, p, known)) is not None]
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
