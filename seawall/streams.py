"""Streams in and out of a vault: content-defined chunking with a bounded parallel pipeline.

Writing: the calling thread cuts the input with FastCDC and names each chunk (keyed BLAKE3);
worker threads compress, encrypt and store the new ones (zstd, BLAKE3 and the store I/O release
the GIL). Stores overlap across streams; `flush`/`close` is the durability barrier. At most
`max_inflight` chunks are held at once, so memory is bounded whatever the input size.
Reading: `ChunkReader` (seawall.stream_reader, re-exported here) fetches chunks ahead on worker
threads and yields them strictly in order.
"""

from __future__ import annotations

import ctypes
import functools
import io
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, Protocol

import blake3
from pyfastcdc import FastCDC

from seawall.crypto import compress_many
from seawall.entropy import ByteSampler, merged_entropy
from seawall.errors import PermanentError
from seawall.manifest import BackupStats, ChunkRef, StreamRef
from seawall.memory import tune_allocator
from seawall.stream_reader import ChunkReader, cpu_capped
from seawall.vault import Vault

__all__ = ["ChunkReader", "ChunkWriter", "Readable"]

Progress = Callable[[int], None]
_EMPTY_HASH = blake3.blake3().hexdigest()
# Small files' new chunks, sealed on a thread of their own in batches of up to this many / bytes
# (see ChunkWriter, `small_batches`); at most SMALL_BATCHES of them queued or sealing.
SMALL_BATCH_CHUNKS = 64
SMALL_BATCH_BYTES = 1 << 20
SMALL_BATCHES = 2


class Readable(Protocol):
    def readinto(self, b: memoryview) -> int: ...


@dataclass
class _Counters:
    bytes_total: int = 0
    bytes_new: int = 0
    stored_new: int = 0
    chunks_total: int = 0
    chunks_new: int = 0


def _readinto(reader: Readable | BinaryIO) -> Callable[[memoryview], int]:
    readinto = getattr(reader, "readinto", None)
    if callable(readinto):
        return readinto

    def via_read(view: memoryview) -> int:
        data = reader.read(len(view))
        view[: len(data)] = data
        return len(data)

    return via_read


class ChunkWriter:
    """Turns byte streams into StreamRefs, storing new chunks in the vault.

    The calling thread cuts each stream with FastCDC and hashes every chunk twice (the stream's
    hash and the keyed chunk id); worker threads compress, encrypt and store the chunks the vault
    does not have yet. At most `max_inflight` chunks wait or are being stored at once, so memory
    is bounded whatever the input size (at most max_inflight x (max chunk size + its sealed copy),
    128 MiB with the default parameters, about 32 MiB for 1 MiB chunks).

    `write` returns as soon as its chunks are named and queued: the stores of one stream overlap
    with the reading of the next. Without this a tree of small files (one chunk each) pays one
    store round trip per file, two fsyncs on a local vault, one file after the other.

    `seal_in_caller=True` is for callers that already write from several threads (a file tree's
    readers) into a local store: each calling thread compresses, encrypts and stores its own new
    chunks, straight from its read buffer. No chunk is copied or handed to another thread, and on
    these VMs every hand-off (a futex wake across vCPUs) cost more than the Python around it.

    Durability: every chunk of every returned StreamRef is stored once `flush()`, `fill_stats()` or
    `close()` (the end of the `with` block) has returned. Call one of them before writing a manifest
    that references the refs. A failed store is raised by that call, and by every later `write`:
    a writer that lost a chunk never reports success again.
    """

    def __init__(self, vault: Vault, *, workers: int = 3, max_inflight: int = 16, io_threads: int = 5,
                 seal_in_caller: bool = False, level: int = 1):
        tune_allocator()
        self.vault = vault
        self.level = level  # zstd level of new chunks; 0 stores them uncompressed
        self._in_caller = seal_in_caller
        self._sealing = 0  # chunks being sealed by calling threads: `flush` waits for them
        params = vault.config.chunker
        self._cdc = FastCDC(params.avg_size, min_size=params.min_size, max_size=params.max_size)
        self._max_size, self._min_size = params.max_size, params.min_size
        self._buffers = threading.local()  # one read buffer per thread calling write()
        # A store spends most of its time waiting: two fsyncs per chunk on a local vault (measured
        # here: 8 concurrent puts make 2x the small objects per second of 3), a round trip on S3.
        # The extra threads wait while `workers` threads' worth of CPU compresses and encrypts.
        if vault.store.batch_bytes:  # a local disk: nothing to wait for, one I/O thread is plenty
            workers, io_threads = cpu_capped(vault, workers), 1
        self._pool = ThreadPoolExecutor(workers + io_threads, thread_name_prefix="seawall-put")
        self._slots = threading.BoundedSemaphore(max_inflight)
        self._lock = threading.Lock()
        self._sealed = threading.Condition(self._lock)
        self._pending: set[Future[None]] = set()
        self._queued: set[str] = set()  # ids handed to a worker: a duplicate is not sealed twice
        # Waking a worker costs tens of microseconds here (a futex wake across vCPUs, made while
        # holding the GIL): a fast store takes chunks in batches of a few MiB, one wake per batch.
        # Fewer chunks than max_inflight per batch, or a half-filled batch could hold every slot.
        self._batch: list[tuple[bytes, str]] = []
        self._batch_bytes = 0
        self._batch_limit = vault.store.batch_bytes
        self._batch_chunks = max(1, max_inflight // 4) if self._batch_limit else 1
        self._error: BaseException | None = None
        # Stores that upload packs in the background (S3): small files' new chunks (`write_small`)
        # go to one sealing thread in batches, compressed in one GIL-free call per batch
        # (`compress_many`), so zstd runs beside the walking thread, which otherwise did it all.
        # One hand-off per batch, not per file: per file, the hand-offs cost more than the work.
        self._small_batches = seal_in_caller and vault.store.background_puts
        self._small: list[tuple[bytes, str]] = []
        self._small_bytes = 0
        self._small_slots = threading.BoundedSemaphore(SMALL_BATCHES)
        self._small_pool = ThreadPoolExecutor(1, thread_name_prefix="seawall-seal") if self._small_batches else None
        self.counters = _Counters()
        self.sampler = ByteSampler()  # new data's entropy, for the anomaly detector (a few bytes per chunk)

    def __enter__(self) -> ChunkWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:  # already failing: stop quickly, and do not hide the original error behind a store error
            self.cancel()
            if self._small_pool is not None:
                self._small_pool.shutdown(wait=True, cancel_futures=True)
            self._pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        """Wait for every queued chunk (raising a failed store), then stop the workers."""
        try:
            self.flush()
        finally:
            if self._small_pool is not None:
                self._small_pool.shutdown(wait=True)
            self._pool.shutdown(wait=True)

    def flush(self) -> None:
        """Return once every chunk queued so far is stored; raise the first store error, if any."""
        with self._lock:
            batch = self._take_batch()
            small, self._small, self._small_bytes = self._small, [], 0
        if batch:
            self._submit(self._pool, self._store, batch, self._slots, len(batch))
        if small:
            self._submit_small(small)
        with self._lock:
            pending = list(self._pending)
            self._sealed.wait_for(lambda: not self._sealing)
        for fut in pending:
            fut.exception()  # waits; errors are collected by _finished
        self._raise_failure()
        self.vault.commit_chunks()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def cancel(self) -> None:
        """Make every `write`/`write_chunks` still running stop at its next chunk (the caller is
        failing or was told to stop: a reader in the middle of a large file must not hold it up)."""
        if self._error is None:
            self._error = PermanentError("cancelled: the backup is stopping")

    def _store(self, batch: list[tuple[bytes, str]]) -> None:
        for data, chunk_id in batch:
            if self._error is not None:
                return  # another store failed: the writer is failing, do not seal more
            self._store_one(data, chunk_id)

    def _store_one(self, data: bytes | memoryview, chunk_id: str, packed: bytes | memoryview | None = None) -> None:
        _, stored = self.vault.put_chunk(data, chunk_id, level=self.level, packed=packed)
        if stored:
            with self._lock:
                c = self.counters
                c.bytes_new += len(data)
                c.stored_new += stored
                c.chunks_new += 1
                self.sampler.add(data)

    def _seal_small(self, batch: list[tuple[bytes, str]]) -> None:
        """Seal a batch of small new chunks (on the sealing thread): one zstd call for all."""
        if self._error is not None:
            return
        frames = compress_many([data for data, _ in batch], self.level) if self.level else None
        for i, (data, chunk_id) in enumerate(batch):
            if self._error is not None:
                return
            self._store_one(data, chunk_id, frames[i] if frames is not None else None)

    def _submit_small(self, batch: list[tuple[bytes, str]]) -> None:
        self._small_slots.acquire()  # at most SMALL_BATCHES held: memory stays bounded
        self._submit(self._small_pool, self._seal_small, batch, self._small_slots, 1)  # type: ignore[arg-type]

    def _seal_here(self, data: memoryview, chunk_id: str) -> None:
        """Seal and store one new chunk in the calling thread (`seal_in_caller`)."""
        try:
            self._store_one(data, chunk_id)
        except BaseException as exc:
            with self._lock:
                self._error = self._error or exc
            raise
        finally:
            with self._lock:
                self._sealing -= 1
                if not self._sealing:
                    self._sealed.notify_all()

    def _finished(self, slots: threading.Semaphore, held: int, fut: Future[None]) -> None:
        with self._lock:
            self._pending.discard(fut)
            if self._error is None and not fut.cancelled() and fut.exception() is not None:
                self._error = fut.exception()
        for _ in range(held):
            slots.release()

    def _queue(self, data: bytes, chunk_id: str) -> None:
        """Hand a new chunk to the workers, in batches where the store asks for them."""
        self._slots.acquire()
        with self._lock:
            self._batch.append((data, chunk_id))
            self._batch_bytes += len(data)
            if self._batch_bytes < self._batch_limit and len(self._batch) < self._batch_chunks:
                return
            batch = self._take_batch()
        self._submit(self._pool, self._store, batch, self._slots, len(batch))

    def _take_batch(self) -> list[tuple[bytes, str]]:
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        return batch

    def _submit(self, pool: ThreadPoolExecutor, work: Callable[[list[tuple[bytes, str]]], None],
                batch: list[tuple[bytes, str]], slots: threading.Semaphore, held: int) -> None:
        """Run `work(batch)` on `pool`; the `held` slots the caller took are released when it ends."""
        try:
            fut = pool.submit(work, batch)
        except BaseException:
            for _ in range(held):
                slots.release()
            raise
        with self._lock:
            self._pending.add(fut)
        fut.add_done_callback(functools.partial(self._finished, slots, held))

    def write(self, reader: Readable | BinaryIO, name: str, *, kind: str = "data",
              progress: Progress | None = None) -> StreamRef:
        """Chunk `reader` and queue its new chunks for storing; returns the stream's reference."""
        size, hash_, refs = self.write_chunks(reader, progress)
        return StreamRef(name=name, kind=kind, size=size, hash=hash_, chunks=refs)

    def write_chunks(self, reader: Readable | BinaryIO,
                     progress: Progress | None = None) -> tuple[int, str, list[ChunkRef]]:
        """`write` without the StreamRef: (size, BLAKE3 hex, chunk refs), for one file of many."""
        self._raise_failure()
        hasher = blake3.blake3()
        keyring, known = self.vault.keyring, self.vault.known_chunks()
        refs: list[ChunkRef] = []
        size = 0
        for piece in self._cut(reader):
            hasher.update(piece)
            refs.append(self._put_piece(piece, keyring.chunk_id(piece), known))
            size += len(piece)
            if progress:
                progress(len(piece))
        self._raise_failure()
        return size, hasher.hexdigest(), refs

    def write_small(self, data: bytes, progress: Progress | None = None) -> tuple[int, str, list[ChunkRef]]:
        """`write_chunks` of a whole small file already read: below the chunker's minimum size it
        is one chunk (FastCDC cuts nothing shorter), so the cutting loop, its reused buffer and
        generator are skipped: they cost more Python time than the chunk's hashing (bench/PACKS.md)."""
        if len(data) >= self._min_size:
            return self.write_chunks(io.BytesIO(data), progress)
        if not data:
            self._raise_failure()
            return 0, _EMPTY_HASH, []
        chunk_id = self.vault.keyring.chunk_id(data)
        if self._small_batches:
            ref = self._put_small(data, chunk_id, self.vault.known_chunks())
        else:
            ref = self._put_piece(data, chunk_id, self.vault.known_chunks())
        if progress:
            progress(len(data))
        self._raise_failure()
        return len(data), blake3.blake3(data).hexdigest(), [ref]

    def _put_small(self, data: bytes, chunk_id: str, known: set[str]) -> ChunkRef:
        """`_put_piece` for `write_small` with `small_batches`: a new chunk joins the next batch."""
        if self._error is not None:
            raise self._error
        n = len(data)
        with self._lock:
            if not self._claim(chunk_id, n, known):
                return chunk_id, n
            self._small.append((data, chunk_id))
            self._small_bytes += n
            if len(self._small) < SMALL_BATCH_CHUNKS and self._small_bytes < SMALL_BATCH_BYTES:
                return chunk_id, n
            batch, self._small, self._small_bytes = self._small, [], 0
        self._submit_small(batch)
        return chunk_id, n

    def put_piece(self, piece: bytes | memoryview, chunk_id: str | None = None) -> ChunkRef:
        """Store one piece the caller cut itself (no content-defined cutting, no stream hash) as a
        chunk, unless the vault has it: for formats with their own boundaries (PostgreSQL's 8 KiB
        pages). Same deduplication, hand-off and durability rules as `write`; `piece` may be a
        reused buffer (it is copied when handed to another thread)."""
        self._raise_failure()
        return self._put_piece(piece, chunk_id or self.vault.keyring.chunk_id(piece), self.vault.known_chunks())

    def _put_piece(self, piece: bytes | memoryview, chunk_id: str, known: set[str]) -> ChunkRef:
        if self._error is not None:  # cancelled, or a store write failed: stop reading now
            raise self._error
        n = len(piece)
        with self._lock:
            new = self._claim(chunk_id, n, known)
            if new:
                self._sealing += self._in_caller
        if new:
            if self._in_caller:
                self._seal_here(piece, chunk_id)
            else:
                self._queue(bytes(piece), chunk_id)  # the read buffer is reused: hand off a copy
        return chunk_id, n

    def _claim(self, chunk_id: str, n: int, known: set[str]) -> bool:
        """Count a chunk of `n` bytes; True if it is new (neither in the vault nor queued), and then
        this caller stores it. Called with `_lock` held."""
        self.counters.bytes_total += n
        self.counters.chunks_total += 1
        if chunk_id in known or chunk_id in self._queued:
            return False
        self._queued.add(chunk_id)
        return True

    def _cut(self, reader: Readable | BinaryIO) -> Iterator[memoryview]:
        """The chunks of `reader`, cut exactly as `FastCDC.cut_stream` cuts them, in a reused buffer.

        pyfastcdc's cut_stream allocates and zero-fills a new 2 x max_size buffer (8 MiB) for every
        stream: for a tree of small files that memset and its page faults, done holding the GIL,
        cost more than the chunking. Like cut_stream, every cut here sees at least max_size bytes
        (or the end of the stream), so the boundaries are the same.
        """
        buf, address = self._read_buffer()
        view = memoryview(buf)
        readinto = _readinto(reader)
        start = end = 0
        eof = False
        while True:
            if not eof and end - start < self._max_size:
                # Keep the unconsumed tail, then top up. ctypes' memmove runs without the GIL;
                # a slice assignment would hold it while moving up to max_size bytes.
                if end > start:  # (each call lets other threads take the GIL: skip it when empty)
                    ctypes.memmove(address, address + start, end - start)
                end, start = end - start, 0
                while end < len(buf):
                    n = readinto(view[end:])
                    if not n:
                        eof = True
                        break
                    end += n
            if start == end:
                return
            length = next(self._cdc.cut_buf(view[start:end])).length
            yield view[start : start + length]
            start += length

    def _read_buffer(self) -> tuple[bytearray, int]:
        """This thread's read buffer (2 x max chunk size) and its address."""
        held = getattr(self._buffers, "held", None)
        if held is None:
            buf = bytearray(2 * self._max_size)
            held = self._buffers.held = (buf, ctypes.addressof(ctypes.c_char.from_buffer(buf)))
        return held

    def write_bytes(self, data: bytes, name: str, *, kind: str = "data") -> StreamRef:
        return self.write(io.BytesIO(data), name, kind=kind)

    def fill_stats(self, stats: BackupStats) -> None:
        """Add this writer's counts to `stats`, after waiting for every queued chunk (see `flush`)."""
        self.flush()
        c = self.counters
        stats.bytes_new += c.bytes_new
        stats.stored_bytes_new += c.stored_new
        stats.chunks_new += c.chunks_new
        changes = stats.change_stats()
        changes.entropy_bits = merged_entropy(changes.entropy_bits, changes.entropy_sample_bytes,
                                              self.sampler.entropy(), self.sampler.sample_bytes)
        changes.entropy_sample_bytes += self.sampler.sample_bytes
        if stats.stored_bytes_new:
            changes.compression_ratio = round(stats.bytes_new / stats.stored_bytes_new, 4)
