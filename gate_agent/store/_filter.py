"""An in-memory Bloom filter over the ``plate_keys`` index (in :mod:`gate_agent.store`).

Most of an unknown car's lookup cost is the one-edit search: one index seek per deletion key of
the read, each finding nothing. The filter answers "no cached plate has this key" from memory, so
those seeks are skipped. It can only say *maybe* or *no*: bits are set for every key written and
never cleared, so a removed plate costs at most a useless seek, never a missed match. Keys are
added *before* the rows that carry them are committed, so a reader can never see a row the
filter does not know.

Size: 16 bits per key and 2 probes (false-positive rate ~1.4%), rounded up to a power of two;
1,000,000 reservations (~8 million keys) take 16 MiB, a lot's usual few thousand a few KiB.
Python's ``hash`` of a ``str`` is fixed within a process, which is all an in-memory filter needs.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["KeyFilter"]

BITS_PER_KEY = 16
MIN_BITS = 1 << 16
_MASK64 = (1 << 64) - 1


class KeyFilter:
    def __init__(self, expected_keys: int = 0) -> None:
        bits = MIN_BITS
        while bits < expected_keys * BITS_PER_KEY:
            bits <<= 1
        self._mask = bits - 1
        self._bits = bytearray(bits // 8)
        self.capacity = bits // BITS_PER_KEY  # keys it holds at its designed error rate
        self.keys_added = 0

    def add(self, key: str) -> None:
        h = hash(key) & _MASK64
        for i in (h & self._mask, (h >> 32) & self._mask):
            self._bits[i >> 3] |= 1 << (i & 7)
        self.keys_added += 1

    def add_all(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.add(key)

    def __contains__(self, key: object) -> bool:
        h = hash(key) & _MASK64
        bits, mask = self._bits, self._mask
        i, j = h & mask, (h >> 32) & mask
        return bool(bits[i >> 3] & (1 << (i & 7))) and bool(bits[j >> 3] & (1 << (j & 7)))

    @property
    def overfull(self) -> bool:
        return self.keys_added > 2 * self.capacity
