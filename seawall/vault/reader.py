"""Reading sealed chunks out of packs with ranged GETs.

`read_many` groups chunks by pack and reads each run of neighbouring blobs with one ranged GET
(gaps up to `COALESCE_GAP` are read through rather than paying another request). Single reads on
a remote store (`store.read_ahead` > 0) read ahead: the range from the chunk on, up to the window,
is kept for a moment, because a restore asks next for the chunks written right after (a backup
writes a tree's files in walk order, and a restore walks the same order). Memory stays bounded:
at most `READ_AHEAD_SEGMENTS` windows are held.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from seawall.vault.index import Location

COALESCE_GAP = 256 << 10
READ_AHEAD_SEGMENTS = 16


class _Segment:
    __slots__ = ("data", "end", "error", "ready", "start")

    def __init__(self, start: int, end: int):
        self.start, self.end = start, end
        self.data = b""
        self.error: BaseException | None = None
        self.ready = threading.Event()


class BlobReader:
    """Sealed blob bytes by location, with read-ahead for remote stores."""

    def __init__(self, store):
        self.store = store
        self.window = store.read_ahead
        self._lock = threading.Lock()
        self._segments: OrderedDict[tuple[str, int], _Segment] = OrderedDict()

    def read(self, loc: Location) -> bytes:
        pack, offset, length = loc
        if not self.window or length >= self.window:
            return self.store.get_range(pack, offset, length)
        seg, mine = self._segment_for(pack, offset, length)
        if mine:
            try:
                seg.data = self.store.get_range(pack, seg.start, seg.end - seg.start)
            except BaseException as exc:
                seg.error = exc
                with self._lock:
                    self._segments.pop((pack, seg.start), None)
                raise
            finally:
                seg.ready.set()
        else:
            seg.ready.wait()
            if seg.error is not None:
                return self.store.get_range(pack, offset, length)
        return seg.data[offset - seg.start:offset - seg.start + length]

    def _segment_for(self, pack: str, offset: int, length: int) -> tuple[_Segment, bool]:
        with self._lock:
            for (key, _), seg in reversed(self._segments.items()):
                if key == pack and seg.start <= offset and offset + length <= seg.end:
                    return seg, False
            seg = _Segment(offset, offset + self.window)
            self._segments[(pack, offset)] = seg
            while len(self._segments) > READ_AHEAD_SEGMENTS:
                self._segments.popitem(last=False)
            return seg, True

    def read_many(self, items: Iterable[tuple[str, Location]]) -> dict[str, memoryview]:
        """Sealed bytes of many chunks: one ranged GET per run of neighbouring blobs in a pack (views
        into the bytes read: a caller keeping one keeps its whole run)."""
        by_pack: dict[str, list[tuple[int, int, str]]] = {}
        for chunk_id, (pack, offset, length) in items:
            by_pack.setdefault(pack, []).append((offset, length, chunk_id))
        out: dict[str, memoryview] = {}
        for pack, blobs in by_pack.items():
            for start, end, run in coalesce(sorted(blobs)):
                # Views, not slices: slicing bytes copies every blob once more, holding the GIL.
                data = memoryview(self.store.get_range(pack, start, end - start))
                for offset, length, chunk_id in run:
                    out[chunk_id] = data[offset - start:offset - start + length]
        return out


def coalesce(blobs: list[tuple[int, int, str]], gap: int = COALESCE_GAP
             ) -> list[tuple[int, int, list[tuple[int, int, str]]]]:
    """Sorted (offset, length, id) → runs (start, end, members) with gaps of at most `gap` bytes."""
    runs: list[tuple[int, int, list[tuple[int, int, str]]]] = []
    for blob in blobs:
        offset, length, _ = blob
        if runs and offset - runs[-1][1] <= gap:
            start, end, members = runs[-1]
            members.append(blob)
            runs[-1] = (start, max(end, offset + length), members)
        else:
            runs.append((offset, offset + length, [blob]))
    return runs
