"""Reading streams out of a vault: chunks fetched ahead by worker threads, yielded strictly in order."""

from __future__ import annotations

import itertools
import os
import queue
from collections import deque
from collections.abc import Iterable, Iterator

import blake3

from seawall.errors import IntegrityError
from seawall.manifest import ChunkRef, StreamRef
from seawall.memory import tune_allocator
from seawall.prefetch import Job, Prefetcher
from seawall.vault import Vault

BATCH_CHUNKS = 64  # chunks per fetch on a fast store (with at most its batch_bytes of them)


def cpu_capped(vault: Vault, workers: int) -> int:
    """`workers`, capped at the core count on a local store: CPU-bound, more threads only contend."""
    return min(workers, os.cpu_count() or 1) if vault.store.batch_bytes else workers


class ChunkReader:
    """Fetches chunks ahead of use with a small worker pool; yields plaintext in order.

    The calling thread is not left idle: it fetches a stream's first chunk itself while the
    workers fetch the next ones, and it takes over any chunk no worker has started when it needs it.
    A file of one chunk (most files) thus costs no thread hand-off at all.
    """

    def __init__(self, vault: Vault, *, workers: int = 3, prefetch: int = 8):
        tune_allocator()
        self.vault = vault
        workers = cpu_capped(vault, workers)
        self._ahead = Prefetcher(workers, "seawall-get")
        # On a fast store a worker takes a run of consecutive chunks at a time: up to BATCH_CHUNKS
        # or `batch_bytes` (4 MiB), read out of its pack with one ranged read and opened in one go.
        # Each batch costs a wake-up and a hand-off under the GIL (see ChunkWriter); with 4 chunks
        # per batch a tree's small files (1 chunk each) made ~1,000 batches of a few hundred KiB
        # per GiB. The window counts batches: at least 4 per worker, or the workers ran dry while
        # the consumer was busy (2 workers: 8 batches read 1 GiB 8% faster than 4). That holds up
        # to ~32 MiB ahead per stream being read, as before: a batch ends at 4 MiB whatever its count.
        self._batch_bytes = vault.store.batch_bytes or 1
        self._batch_chunks = BATCH_CHUNKS if vault.store.batch_bytes else 1
        self._window = max(2, 4 * workers) if vault.store.batch_bytes else max(2, prefetch)
        self._patches: dict[str, list[str]] = {}  # page-patched blocks (seawall.postgres.pagepatch)

    def add_patches(self, patches: dict[str, list[str]] | None) -> None:
        """Make the page-patched blocks of an entry (`Entry.patches`) readable by their block ids;
        call before reading the entry's chunks."""
        if patches:
            self._patches.update(patches)

    def __enter__(self) -> ChunkReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._ahead.close()

    def iter_chunks(self, chunks: Iterable[ChunkRef]) -> Iterator[bytes]:
        batches = self._batches(chunks)
        first = next(batches, None)
        if first is None:
            return
        done: queue.SimpleQueue[None] = queue.SimpleQueue()  # this iteration's finished batches
        window: deque[Job] = deque()
        try:
            for batch in itertools.islice(batches, self._window - 1):  # the workers start on these ...
                window.append(self._ahead.submit(self._fetch, batch, done))
            yield from self._checked_all(first, self._fetch(first))  # ... while this thread does the first
            for batch in batches:
                window.append(self._ahead.submit(self._fetch, batch, done))
                yield from self._take(window)
            while window:
                yield from self._take(window)
        finally:  # a consumer that stops early leaves no fetches behind
            self._ahead.cancel(window)

    def _batches(self, chunks: Iterable[ChunkRef]) -> Iterator[list[ChunkRef]]:
        """Consecutive chunks in groups of up to `batch_bytes` (one per group where it is 0)."""
        batch: list[ChunkRef] = []
        size = 0
        for ref in chunks:
            batch.append(ref)
            size += ref[1]
            if size >= self._batch_bytes or len(batch) >= self._batch_chunks:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch

    def _fetch(self, batch: list[ChunkRef]) -> list[bytes]:
        patches = self._patches
        if patches and any(ref[0] in patches for ref in batch):
            return self._fetch_patched(batch)
        if len(batch) == 1:
            return [self.vault.get_chunk(batch[0][0])]
        return self.vault.get_chunks([ref[0] for ref in batch])  # neighbours in a pack: one ranged GET

    def _fetch_patched(self, batch: list[ChunkRef]) -> list[bytes]:
        """`_fetch` of a batch with page-patched blocks: their bases and patches are fetched with the
        rest, each block composed and checked against its id (the id of the whole block's plaintext)."""
        from seawall.postgres import pagepatch

        ids: list[str] = []
        for ref in batch:
            ids.extend(self._patches[ref[0]][:2] if ref[0] in self._patches else (ref[0],))
        datas = iter(self.vault.get_chunks(ids))
        out = []
        for ref in batch:
            if ref[0] not in self._patches:
                out.append(next(datas))
                continue
            base_id, patch_id, bits = pagepatch.decode(self._patches[ref[0]])
            try:
                block = pagepatch.compose(next(datas), next(datas), bits)
            except ValueError as exc:
                raise IntegrityError(f"block {ref[0]}: {exc} (base {base_id}, patch {patch_id})") from None
            if self.vault.keyring.chunk_id(block) != ref[0]:
                raise IntegrityError(f"block {ref[0]} composed from base {base_id} and patch {patch_id} "
                                     "does not match its id")
            out.append(block)
        return out

    def _take(self, window: deque[Job]) -> Iterator[bytes]:
        job = window.popleft()
        # A batch no worker has started is fetched here: waiting would mean waiting for another one.
        return self._checked_all(job.arg, self._ahead.take(job))

    def _checked_all(self, batch: list[ChunkRef], datas: list[bytes]) -> Iterator[bytes]:
        for ref, data in zip(batch, datas, strict=True):
            yield self._checked(ref, data)

    @staticmethod
    def _checked(ref: ChunkRef, data: bytes) -> bytes:
        chunk_id, size = ref
        if len(data) != size:
            raise IntegrityError(f"chunk {chunk_id} has {len(data)} bytes, the manifest says {size}")
        return data

    def iter_stream(self, ref: StreamRef) -> Iterator[bytes]:
        """The stream's plaintext, checked against its recorded size and hash at the end."""
        hasher = blake3.blake3()
        size = 0
        for data in self.iter_chunks(ref.chunks):
            hasher.update(data)
            size += len(data)
            yield data
        if size != ref.size or (ref.hash and hasher.hexdigest() != ref.hash):
            raise IntegrityError(f"stream {ref.name} does not match its recorded size/hash")

    def read_stream(self, ref: StreamRef) -> bytes:
        """Whole stream in memory: only for small streams (tree indexes, metadata)."""
        return b"".join(self.iter_stream(ref))
