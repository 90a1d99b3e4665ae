"""A cheap sample of the new data a backup stores, and its Shannon entropy.

Ransomware leaves encrypted files behind: their bytes look random (close to 8 bits per byte), where
documents, logs and database pages sit far lower. Measuring every new byte would cost a pass over
the data the write path does not otherwise make; a sample costs almost nothing: `SAMPLE` bytes from
the middle of each new chunk (a copy of a few hundred bytes next to compressing and encrypting a
chunk of up to MiBs), kept in a reservoir of `SLOTS` pieces so a backup of millions of small files
still holds at most SLOTS x SAMPLE bytes, drawn evenly from all of them (Vitter's algorithm R).
The entropy is computed once, at the end, over at most 256 KiB.
"""

from __future__ import annotations

import math
import random
from collections import Counter

SAMPLE = 256
SLOTS = 1024


class ByteSampler:
    """Reservoir of byte pieces from new chunks. Not thread-safe: callers hold their own lock."""

    __slots__ = ("_pieces", "_rng", "seen")

    def __init__(self, seed: int | None = None):
        self._pieces: list[bytes] = []
        self._rng = random.Random(seed)
        self.seen = 0

    def add(self, data: bytes | memoryview) -> None:
        """Offer one new chunk's plaintext."""
        start = max(0, (len(data) - SAMPLE) // 2)
        self.seen += 1
        if len(self._pieces) < SLOTS:
            self._pieces.append(bytes(data[start:start + SAMPLE]))
            return
        slot = self._rng.randrange(self.seen)
        if slot < SLOTS:
            self._pieces[slot] = bytes(data[start:start + SAMPLE])

    @property
    def sample_bytes(self) -> int:
        return sum(len(p) for p in self._pieces)

    def entropy(self) -> float | None:
        """Shannon entropy of the sample in bits per byte (None: nothing sampled)."""
        return shannon_entropy(b"".join(self._pieces))


def shannon_entropy(data: bytes) -> float | None:
    """Bits per byte, 0 (one repeated byte) to 8 (uniformly random); None for no data."""
    if not data:
        return None
    total = len(data)
    return -sum(n / total * math.log2(n / total) for n in Counter(data).values())


def merged_entropy(a: float | None, a_bytes: int, b: float | None, b_bytes: int) -> float | None:
    """The byte-weighted mean of two measurements (several writers in one backup)."""
    parts = [(e, n) for e, n in ((a, a_bytes), (b, b_bytes)) if e is not None and n > 0]
    if not parts:
        return None
    return sum(e * n for e, n in parts) / sum(n for _, n in parts)
