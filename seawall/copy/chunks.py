"""Copying chunks into the destination's packs, verified there before they are indexed.

Chunks the destination lacks are read at the source with coalesced ranged GETs (neighbours in a
source pack: one request), each authenticated and hashed back to its id there (a corrupt chunk is
a verdict naming it and its pack, and never lands), then appended as the same sealed bytes to open
packs of the destination (the vaults share the master key; a sealed chunk binds only its id).
Every destination pack is checked after its upload (`seawall.copy.verify`: S3 ETag, or a read-back),
retried on a mismatch and, if it stays wrong, deleted and the copy failed. Only after every pack is
durable and verified is the destination's index written (`Packer.flush`), and only after that the
caller writes manifests. A killed copy leaves packs no index lists (deleted by the destination's
GC) or indexed chunks no manifest uses: a rerun skips what is indexed and copies the rest.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from seawall.copy import verify as copy_verify
from seawall.copy.transfer import CopySettings, ObjectCopier, TransferStats, _Mismatch
from seawall.errors import IntegrityError, ObjectNotFound, SeawallError
from seawall.stores.base import Fetched
from seawall.vault import Vault

_UNIT_BYTES = 4 << 20  # per read unit: 8 workers hold 32 MiB of source reads (8 MiB: 64 MiB)
_UNIT_CHUNKS = 256
_PACK_BUDGET = 64 << 20  # bytes of destination packs held at once (at least two packs)
_REMOTE_MIN_PACKS = 4  # a remote destination's uploads are waits: two 32 MiB packs starved them


class ChunkCopier:
    """Copies chunks from `source` into packs of `dest` (see the module docstring)."""

    def __init__(self, source: Vault, dest: Vault, settings: CopySettings, stats: TransferStats | None = None):
        self.source, self.dest, self.settings = source, dest, settings
        self.objects = ObjectCopier(source, dest, settings, stats)  # retries, bandwidth, verification
        self.stats = self.objects.stats
        self._verify = copy_verify.METHODS[copy_verify.resolve(settings.verify, dest.store)]
        self._lock = threading.Lock()
        dest.chunks.set_upload(self._upload)
        packer = dest.chunks.packer()
        packer.index_every = 1  # every verified pack indexed at once: a rerun skips it
        # Packs held at once (open, uploading, verifying): one per worker was 8 pack buffers plus
        # their copies and read-backs, ~500 MB of a 1 GB copy (bench/SCALE.md). The workers only
        # append sealed bytes; the packs' uploads are what takes time, and a few overlap enough.
        # On a remote store (S3, SFTP) each upload is mostly a wait, so more
        # of them overlap: with two S3 packs the copy fell from ~70 to ~56-72 MB/s (bench/SCALE.md).
        least = _REMOTE_MIN_PACKS if dest.store.remote else 2
        packer.max_open = min(settings.workers, max(least, _PACK_BUDGET // packer.target))

    def __enter__(self) -> ChunkCopier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.objects.__exit__(*exc)

    # ---- destination packs -------------------------------------------------------------------
    def _upload(self, key: str, view: memoryview) -> None:
        # Read back: the pack's own buffer is written and compared (no copy; it is not reused
        # before this returns). An S3 PUT body must be bytes.
        got = Fetched(view if self._verify is copy_verify.readback else bytes(view))
        try:
            self.objects._retrying(lambda: self.objects._put_verified(key, got))
        except _Mismatch as exc:
            self.objects._retrying(lambda: self.dest.store.delete(key))
            raise IntegrityError(exc.message) from None
        self.stats.add(objects_copied=1, bytes_copied=len(got.data))

    # ---- chunks ------------------------------------------------------------------------------
    def units(self, chunk_ids: Iterable[str]) -> Iterator[list[str]]:
        """Groups of chunks in one source object, neighbours together, a few MiB each."""
        chunks = self.source.chunks
        by_object: dict[str, list[tuple[int, str]]] = {}
        for c in chunk_ids:
            loc = chunks.index.get(c)
            by_object.setdefault(loc[0] if loc else f"loose:{c}", []).append((loc[1] if loc else 0, c))
        for members in by_object.values():
            unit: list[str] = []
            size = 0
            for _, c in sorted(members):
                unit.append(c)
                size += chunks.stored_size(c) or 0
                if size >= _UNIT_BYTES or len(unit) >= _UNIT_CHUNKS:
                    yield unit
                    unit, size = [], 0
            if unit:
                yield unit

    def copy(self, chunk_ids: list[str], done: Callable[[str, str | None], None] | None = None
             ) -> dict[str, str | None]:
        """Copy `chunk_ids` into the destination and index them; returns id → None (copied) or problem.

        Raises:
            PermanentError / RetryableError: the destination refused or kept failing (nothing of
                this call is indexed then; a rerun copies it again).
        """
        verdicts: dict[str, str | None] = {}
        with ThreadPoolExecutor(self.settings.workers, thread_name_prefix="seawall-copy") as pool:
            units = list(self.units(chunk_ids))
            for unit, result in zip(units, pool.map(self._copy_unit, units), strict=True):
                for c in unit:
                    verdicts[c] = result.get(c)
                    if done is not None:
                        done(c, verdicts[c])
        self.objects._retrying(self.dest.commit_chunks)  # packs uploaded and verified, then indexed
        failed = self.dest.chunks.packer().failed
        for c, verdict in verdicts.items():
            if verdict is None and c in failed:
                verdicts[c] = failed[c]
        self.dest.forget_chunks([c for c in failed if c in verdicts])
        return verdicts

    def _copy_unit(self, unit: list[str]) -> dict[str, str | None]:
        chunks = self.source.chunks
        try:
            sealed = self.objects._retrying(lambda: chunks.sealed_many(unit))
        except (IntegrityError, ObjectNotFound) as exc:
            return dict.fromkeys(unit, f"{exc.message} (at the source)")
        out: dict[str, str | None] = {}
        for c in unit:
            where, blob = sealed[c]
            try:
                chunks.open(c, where, blob)
            except SeawallError as exc:
                out[c] = f"{exc.message} (at the source {self.source.url})"
                self.stats.add(objects_failed=1)
                continue
            self.dest.chunks.put_sealed(c, blob)
            out[c] = None
        return out
