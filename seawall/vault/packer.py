"""Writing chunks into packs from many threads, with bounded memory and crash-safe ordering.

Each writing thread takes an open pack (or starts one), seals its chunk straight into the pack's
buffer and gives the pack back; the thread that fills a pack past the target size finishes and
uploads it, while the other threads go on filling other packs. So at most one open pack per
writing thread is held, plus the ones being uploaded.

`flush` is the durability barrier, in the order that makes a crash harmless:

1. every open pack is finished and uploaded, every upload awaited, the store committed
   (the packs are durable under their real names);
2. one index file listing those packs is written (durable when `put` returns);
3. only then the caller writes a manifest that references the chunks.

A crash before 2 leaves packs no index lists: GC deletes them (under the exclusive lease nothing
else can be writing). A crash before 3 leaves indexed chunks no manifest references: GC repacks them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from seawall.crypto import HEADER_LEN, ObjType, sealed_size_max
from seawall.errors import IntegrityError
from seawall.vault.index import ChunkIndex, write_index
from seawall.vault.packs import ENTRY_SIZE, BlobEntry, PackBuilder

Upload = Callable[[str, memoryview], None]  # must not keep `data` once it returns: the buffer is reused
# Finished packs' buffers kept for the next packs (at most this many): one per writing thread and
# one being uploaded, or a pack started while all spares were taken faulted in a fresh buffer.
SPARE_BUFFERS = 4


def _header_room(entries: int) -> int:
    """Bytes the sealed header and trailer of a pack of `entries` blobs take at most."""
    return ENTRY_SIZE * entries + HEADER_LEN + 16 + 4


class Packer:
    """Open packs of one vault; `add_chunk`/`add_blob` from any thread, `flush` to make them durable."""

    def __init__(self, store, keyring, index: ChunkIndex, target: int, max_chunk: int,
                 upload: Upload | None = None):
        self.store, self.keyring, self.index = store, keyring, index
        self.target = target
        # A full pack's blobs, one more largest chunk, and room for its header (41 bytes per entry)
        self.capacity = target + sealed_size_max(max_chunk) + max(target // 8, 64 << 10)
        self._upload = upload or self._default_upload
        self._lock = threading.Lock()
        self._idle: list[PackBuilder] = []
        # Buffers of uploaded packs, reused: a fresh buffer page-faults in every page it is filled
        # with (192k faults, a quarter of the write path's system time for 1 GiB here).
        self._spare: list[memoryview] = []
        self._uploading = 0
        self._uploaded = threading.Condition(self._lock)
        self._done: dict[str, list[BlobEntry]] = {}  # uploaded, not yet in an index file
        self._pending: set[str] = set()  # chunk ids in open or uploading packs
        self._error: BaseException | None = None
        self.packs_written = 0
        self.bytes_written = 0
        self.last_flushed: dict[str, list[BlobEntry]] = {}  # the packs the last `flush` indexed
        self.last_index: list[str] = []  # and the index files it wrote
        self.failed: dict[str, str] = {}  # chunk id -> why its pack could not be stored intact
        # At most this many packs (open or uploading) at once, 0: one per writing thread. Copies set
        # it: their threads only append sealed bytes, and each pack held is a pack-sized buffer.
        self.max_open = 0
        self._live = 0  # packs built now: open, idle or being finished
        # Index the packs done so far once this many wait (a killed run's rerun then skips them);
        # 0: only at `flush`. Copies index every pack: a resumed copy sends only the rest.
        self.index_every = 16

    def _default_upload(self, key: str, data: memoryview) -> None:
        self.store.put_deferred(key, data)

    # ---- adding ------------------------------------------------------------------------------
    def _take(self, need: int) -> PackBuilder:
        with self._lock:
            # Waits only while holding no pack: the holders give theirs back or finish them. (The
            # test is made inline first: wait_for and its lambda, once per chunk, cost more than it.)
            if not (self._idle or not self.max_open) and self._error is None:
                self._uploaded.wait_for(lambda: self._error is not None or self._idle
                                        or not self.max_open or self._live < self.max_open)
            if self._error is not None:
                raise self._error
            builder = self._idle.pop() if self._idle else None
            if builder is None:
                self._live += 1
        if builder is not None and builder.room() < need + _header_room(len(builder.entries) + 1):
            with self._lock:  # the next pack's slot, taken before this one's is freed
                self._live += 1
            try:
                self._finish(builder)
            except BaseException:
                self._release()
                raise
            builder = None
        if builder is not None:
            return builder
        try:
            return PackBuilder(max(self.capacity, need + _header_room(1)), self._buffer)
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        """One pack fewer held (uploaded, failed or merged into another)."""
        with self._lock:
            self._live -= 1
            self._uploaded.notify_all()

    def _buffer(self, size: int) -> memoryview:
        with self._lock:
            for i, buf in enumerate(self._spare):
                if len(buf) >= size:
                    return self._spare.pop(i)
        return self.store.pack_buffer(size)

    def _recycle(self, builder: PackBuilder) -> None:
        """Keep a finished pack's buffer for a next pack (its upload has returned: see `Upload`)."""
        buf, builder.buf = builder.buf, memoryview(b"")
        with self._lock:
            # Under `max_open` a spare counts as a pack: the packs held (this one included) and the
            # spares together stay within it.
            room = self.max_open - self._live + 1 if self.max_open else SPARE_BUFFERS
            if len(buf) >= self.capacity and len(self._spare) < min(SPARE_BUFFERS, room):
                self._spare.append(buf)

    def _give_back(self, builder: PackBuilder) -> None:
        if builder.size >= self.target:
            self._finish(builder)
        else:
            with self._lock:
                self._idle.append(builder)
                if self.max_open:
                    self._uploaded.notify_all()

    def add_chunk(self, chunk_id: str, data: bytes | memoryview, level: int = 1,
                  packed: bytes | memoryview | None = None) -> int:
        """Seal `data` (zstd `level`, 0: uncompressed; `packed`: its frame if already compressed)
        into an open pack; returns the sealed length."""
        builder = self._take(sealed_size_max(len(data)))
        try:
            length = self.keyring.seal_into(ObjType.CHUNK, chunk_id, data, builder.tail(), level=level,
                                            packed=packed)
            builder.added(chunk_id, length)
            with self._lock:
                self._pending.add(chunk_id)
        finally:
            self._give_back(builder)
        return length

    def add_blob(self, chunk_id: str, blob: bytes | memoryview) -> None:
        """Append an already sealed chunk (copies between vaults sharing the key, repacks)."""
        if len(blob) < HEADER_LEN:
            raise ValueError("not a sealed blob")
        builder = self._take(len(blob))
        try:
            builder.append(chunk_id, blob)
            with self._lock:
                self._pending.add(chunk_id)
        finally:
            self._give_back(builder)

    def pending(self, chunk_id: str) -> bool:
        return chunk_id in self._pending

    # ---- finishing ---------------------------------------------------------------------------
    def _finish(self, builder: PackBuilder) -> None:
        with self._lock:
            self._uploading += 1
        try:
            data = builder.finish(self.keyring)
            self._upload(builder.key, data)
            size = len(data)
            del data
            self._recycle(builder)
            with self._lock:
                self._done[builder.key] = builder.entries
                self.packs_written += 1
                self.bytes_written += size
                ready = self.index_every and len(self._done) >= self.index_every
            if ready:
                self._index_done()
        except IntegrityError as exc:  # the upload stayed damaged: these chunks are not stored
            with self._lock:
                for e in builder.entries:
                    self.failed[e.chunk_id] = exc.message
                    self._pending.discard(e.chunk_id)
        except BaseException as exc:
            with self._lock:
                self._error = self._error or exc
            raise
        finally:
            with self._lock:
                self._uploading -= 1
                self._live -= 1
                self._uploaded.notify_all()

    def _index_done(self) -> list[str]:
        """Commit the store, then write one index file for the packs uploaded so far."""
        with self._lock:
            done, self._done = self._done, {}
        self.store.commit()  # packs durable under their names ...
        self.last_flushed, self.last_index = done, []
        if not done:
            return []
        try:
            keys = self.last_index = write_index(self.store, self.keyring, done)  # ... before an index lists them
        except BaseException:
            with self._lock:  # not indexed: a retried flush writes the index of these packs again
                self._done.update(done)
            raise
        self.index.add_packs(done)
        self.index.listed.update(keys)
        for key in keys:
            self.index.files[key] = set(done)
        with self._lock:
            for entries in done.values():
                self._pending.difference_update(e.chunk_id for e in entries)
        return keys

    def flush(self) -> list[str]:
        """Upload every open pack, commit, then write their index file; returns the index keys."""
        with self._lock:
            idle, self._idle = self._idle, []
        for builder in self._merged([b for b in idle if b.entries]):
            self._finish(builder)
        with self._lock:
            self._uploaded.wait_for(lambda: not self._uploading)
            self._spare.clear()  # a vault kept open holds no pack buffers between backups
            if self._error is not None:
                raise self._error
        return self._index_done()

    def _merged(self, builders: list[PackBuilder]) -> list[PackBuilder]:
        """The partly filled packs of a flush, small ones appended to bigger ones where they fit:
        each writing thread had its own open pack, and a small backup would otherwise end in as many
        small packs as threads (objects and PUTs that buy nothing)."""
        builders.sort(key=lambda b: b.size, reverse=True)
        out: list[PackBuilder] = []
        for builder in builders:
            base = next((o for o in out if o.size + builder.size + _header_room(len(o.entries) + len(builder.entries))
                         <= max(self.target, len(o.buf))), None)
            if base is None:
                out.append(builder)
                continue
            for e in builder.entries:
                base.append(e.chunk_id, builder.buf[e.offset:e.offset + e.length])
            self._recycle(builder)
            self._release()
        return out

    def discard(self) -> None:
        """Drop open packs without uploading (a failing writer); uploaded ones stay for GC."""
        with self._lock:
            self._live -= len(self._idle)
            self._idle.clear()
            self._spare.clear()
            self._uploaded.notify_all()
