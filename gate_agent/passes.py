"""A vehicle pass through one lane: multi-frame voting and the visit id.

Pure logic: the caller passes the time in (any monotonic clock, in seconds); no threads, no IO.

How reads become candidates
    Reads are clustered by plate: a read joins the nearest cluster whose lookalike key
    (:func:`gate_agent.plates.lookalike_key`) is within a small edit distance (1 for plates up to 5
    characters, 2 for longer ones), and two reads of the *same frame* never join the same cluster —
    two plates seen together are two cars. Inside a cluster, reads are grouped by length and each
    length group is voted per character, every vote weighted by that character's OCR confidence
    (the read's overall confidence when it has no per-character ones). The group of the modal
    length (largest summed confidence) gives the cluster's main candidate; reads of other lengths
    are not force-aligned (an insertion would shift every later character) but voted among
    themselves into alternative candidates whose confidence is scaled down by their share of the
    cluster's reads.

    Confidence of a voted plate = mean over positions of (summed confidence of the reads that voted
    the winning character / number of reads in the length group) × (reads in the group / reads in
    the cluster). A single read keeps its own confidence; disagreeing reads pull it down.

Life of a pass
    A pass starts with the first read (or :meth:`PassTracker.start`, from a presence sensor) and
    gets one visit id. The lane decides — as soon as a confident candidate matches, or when
    :meth:`Pass.budget_exhausted` — and calls :meth:`PassTracker.decide`. Reads of the decided
    car then still land in that pass (ignored for deciding) until none came for ``gap_s``, which
    ends it; a later return of the same car is a new pass with a new visit id. A clearly different
    plate while a decided pass lingers starts a new pass. Undecided passes are never ended here:
    the lane must decide once the budget is exhausted.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gate_agent.domain import CharOdds, PlateRead
from gate_agent.plates import lookalike_key, merge_odds

__all__ = ["Pass", "PassTracker", "VotedPlate", "edit_distance", "new_visit_id", "vote"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_visit_id() -> str:
    """A ULID: 26 Crockford base-32 characters, 48-bit wall-clock ms + 80 random bits (sortable)."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


@dataclass(frozen=True, slots=True)
class VotedPlate:
    """A plate text voted from several reads."""

    text: str
    confidence: float
    reads: int  # reads that voted for this text (its length group)
    char_confidences: tuple[float, ...] = ()  # per position, on the same scale as confidence
    char_odds: tuple[CharOdds, ...] = ()  # per position, the reads' OCR odds averaged (if all had)


def _char_weights(read: PlateRead) -> tuple[float, ...]:
    if len(read.char_confidences) == len(read.text):
        return read.char_confidences
    return (read.confidence,) * len(read.text)


def _vote_same_length(reads: Sequence[PlateRead]) -> tuple[str, list[float]]:
    """Per-character weighted vote over reads of one length: (text, position confidences).

    Each position's winner is the character with the most confidence weight. Its confidence is
    the winner's share of the weight times the chance that at least one supporting read got it
    right (1 - prod(1 - c)). So one read keeps the recognizer's confidence, reads that agree
    raise it, and reads that disagree lower it: a weak early frame never makes a later clear read
    less convincing. The plate's confidence is the mean over positions (the recognizer's rule);
    the positions' own confidences are what the matcher weighs.
    """
    tallies: list[dict[str, list[float]]] = [{} for _ in reads[0].text]
    for read in reads:
        for tally, char, weight in zip(tallies, read.text, _char_weights(read), strict=True):
            tally.setdefault(char, []).append(weight)
    text = ""
    position_confidences = []
    for tally in tallies:
        char, support = max(tally.items(), key=lambda item: sum(item[1]))
        total = sum(sum(weights) for weights in tally.values())
        share = sum(support) / total if total > 0 else 0.0
        text += char
        position_confidences.append(share * (1.0 - math.prod(1.0 - c for c in support)))
    return text, position_confidences


def _group_odds(group: Sequence[PlateRead], text: str) -> tuple[CharOdds, ...]:
    """The reads' odds averaged per position; () unless every read has odds that agree with
    the voted text (the matcher then falls back to the per-character confidences)."""
    if any(len(read.char_odds) != len(text) for read in group):
        return ()
    odds = tuple(merge_odds([read.char_odds[i] for read in group]) for i in range(len(text)))
    if any(not o or o[0][0] != ch for o, ch in zip(odds, text, strict=True)):
        return ()
    return odds


def vote(reads: Sequence[PlateRead]) -> list[VotedPlate]:
    """Vote the reads of one car: one candidate per read length, best first."""
    groups: dict[int, list[PlateRead]] = {}
    for read in reads:
        groups.setdefault(len(read.text), []).append(read)
    voted = []
    for group in groups.values():
        text, positions = _vote_same_length(group)
        share = len(group) / len(reads)
        chars = tuple(min(1.0, c * share) for c in positions)
        confidence = min(1.0, sum(positions) / len(positions) * share)
        voted.append(VotedPlate(text, confidence, len(group), chars, _group_odds(group, text)))
    return sorted(voted, key=lambda v: (v.confidence, v.reads), reverse=True)


def _max_distance(key: str) -> int:
    return 1 if len(key) <= 5 else 2


@dataclass
class _Cluster:
    """The reads believed to be one plate, and when it was last seen."""

    reads: list[PlateRead]
    keys: set[str]
    last_seen: float

    def distance(self, key: str) -> int:
        return min(edit_distance(key, k) for k in self.keys)

    def add(self, read: PlateRead, key: str, now: float) -> None:
        self.reads.append(read)
        self.keys.add(key)
        self.last_seen = now


def _nearest(clusters: Sequence[_Cluster], key: str, taken: set[int]) -> int | None:
    best: tuple[int, int] | None = None
    for index, cluster in enumerate(clusters):
        if index in taken:
            continue
        distance = cluster.distance(key)
        if distance <= _max_distance(key) and (best is None or distance < best[0]):
            best = (distance, index)
    return None if best is None else best[1]


@dataclass
class Pass:
    """One vehicle pass: its visit id, the voted candidates and whether the lane has decided."""

    visit_id: str
    started_at: float
    budget_s: float
    decided: bool = False
    last_read_at: float | None = None
    candidates: tuple[VotedPlate, ...] = ()
    _clusters: list[_Cluster] = field(default_factory=list, repr=False)

    def budget_exhausted(self, now: float) -> bool:
        """True once ``budget_s`` has passed since the pass started."""
        return now - self.started_at >= self.budget_s

    def add_frame(self, reads: Sequence[PlateRead], now: float) -> None:
        """Cluster one frame's reads into this pass and re-vote the candidates."""
        taken: set[int] = set()
        for read in reads:
            key = lookalike_key(read.text)
            index = _nearest(self._clusters, key, taken)
            if index is None:
                self._clusters.append(_Cluster([read], {key}, now))
                index = len(self._clusters) - 1
            else:
                self._clusters[index].add(read, key, now)
            taken.add(index)
        if reads:
            self.last_read_at = now
            self._revote()

    def owns(self, read: PlateRead, now: float, gap_s: float) -> bool:
        """Is ``read`` a plate of this pass that was seen within the last ``gap_s``?"""
        key = lookalike_key(read.text)
        return any(
            now - c.last_seen <= gap_s and c.distance(key) <= _max_distance(key)
            for c in self._clusters
        )

    def seen_within(self, now: float, gap_s: float) -> bool:
        last = self.started_at if self.last_read_at is None else self.last_read_at
        return now - last <= gap_s

    def _revote(self) -> None:
        voted = [v for cluster in self._clusters for v in vote(cluster.reads)]
        voted.sort(key=lambda v: (v.confidence, v.reads), reverse=True)
        self.candidates = tuple(voted)


class PassTracker:
    """The passes of one lane. Call :meth:`observe` with every frame's reads."""

    def __init__(
        self,
        *,
        budget_s: float = 1.5,
        gap_s: float = 3.0,
        id_factory: Callable[[], str] = new_visit_id,
    ) -> None:
        if budget_s <= 0 or gap_s <= 0:
            raise ValueError("budget_s and gap_s must be positive")
        self.budget_s = budget_s
        self.gap_s = gap_s
        self._new_id = id_factory
        self.current: Pass | None = None  # the newest pass (decided or not)
        self._lingering: list[Pass] = []  # older decided passes whose car may still be in view

    def start(self, now: float) -> Pass:
        """A presence sensor saw a vehicle: the undecided pass, or a new one."""
        self._expire(now)
        if self.current is not None and not self.current.decided:
            return self.current
        return self._begin(now)

    def observe(self, reads: Sequence[PlateRead], now: float) -> Pass | None:
        """Add one frame's reads; returns the current pass (None when there is none)."""
        self._expire(now)
        fresh = [r for r in reads if not self._absorbed_by_decided(r, now)]
        if fresh:
            if self.current is None or self.current.decided:
                self._begin(now)
            assert self.current is not None
            self.current.add_frame(fresh, now)
        return self.current

    def budget_exhausted(self, now: float) -> bool:
        """True when the current pass is undecided and its time budget has run out."""
        return (
            self.current is not None
            and not self.current.decided
            and self.current.budget_exhausted(now)
        )

    def decide(self, visit_id: str) -> Pass:
        """Mark the pass with ``visit_id`` decided (idempotent); KeyError if it is unknown."""
        for pass_ in (self.current, *self._lingering):
            if pass_ is not None and pass_.visit_id == visit_id:
                pass_.decided = True
                return pass_
        raise KeyError(visit_id)

    def _begin(self, now: float) -> Pass:
        if self.current is not None:
            self._lingering.append(self.current)  # decided: keeps absorbing its car's reads
        self.current = Pass(visit_id=self._new_id(), started_at=now, budget_s=self.budget_s)
        return self.current

    def _absorbed_by_decided(self, read: PlateRead, now: float) -> bool:
        decided = [p for p in (self.current, *self._lingering) if p is not None and p.decided]
        for pass_ in decided:
            if pass_.owns(read, now, self.gap_s):
                pass_.add_frame([read], now)
                return True
        return False

    def _expire(self, now: float) -> None:
        self._lingering = [p for p in self._lingering if p.seen_within(now, self.gap_s)]
        current = self.current
        if current is not None and current.decided and not current.seen_within(now, self.gap_s):
            self.current = None
