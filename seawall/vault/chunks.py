"""Where a vault's chunks are: packs through the index (format v2), or loose v1 objects.

Format v1 stored each chunk as its own object `chunks/<ab>/<id>`. Vaults made before packs keep
working: their loose chunks are listed and read as before, new chunks go into packs, and GC
deletes loose chunks once no backup needs them. Both kinds of object hold the same sealed bytes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable

from seawall.crypto import ObjType
from seawall.errors import IntegrityError, ObjectNotFound
from seawall.vault.index import INDEX_PREFIX, ChunkIndex, load_index
from seawall.vault.packer import Packer, Upload
from seawall.vault.packs import PACK_PREFIX
from seawall.vault.reader import BlobReader

LOOSE_PREFIX = "chunks/"
RELOAD_AFTER = 0.5  # seconds: a miss lists the index files again, but not on every miss of a damaged vault


def chunk_key(chunk_id: str) -> str:
    """The key of a loose (format v1) chunk object."""
    return f"{LOOSE_PREFIX}{chunk_id[:2]}/{chunk_id}"


def pack_target(store) -> int:
    """Target pack size: the store's default, or `SEAWALL_PACK_SIZE` (bytes; tests shrink it)."""
    configured = os.environ.get("SEAWALL_PACK_SIZE", "").strip()
    return int(configured) if configured.isdigit() and int(configured) > 0 else store.pack_size


class ChunkStore:
    """The chunk side of one opened vault: lookups, writes into packs, reads out of them."""

    def __init__(self, store, keyring, vault_id: str, max_chunk: int):
        self.store, self.keyring, self.vault_id = store, keyring, vault_id
        self.max_chunk = max_chunk
        self._lock = threading.Lock()
        self._index: ChunkIndex | None = None
        self._loose: dict[str, int] = {}
        self._known: set[str] | None = None
        self._unchanged_at: float | None = None  # when a listing last showed the index unchanged
        self._packer: Packer | None = None
        self.reader = BlobReader(store)

    # ---- lookups -----------------------------------------------------------------------------
    @property
    def index(self) -> ChunkIndex:
        with self._lock:
            if self._index is None:
                self._load()
            return self._index

    def _load(self, cached: bool = True) -> None:
        self._unchanged_at = None
        self._index = load_index(self.store, self.keyring, self.vault_id, cached=cached)
        self._index.drop_absent({i.key for i in self.store.list(PACK_PREFIX)})
        self._loose = {i.key.rsplit("/", 1)[1]: i.size for i in self.store.list(LOOSE_PREFIX) if i.key.count("/") == 2}
        if self._packer is not None:
            self._packer.index = self._index
        self._known = None

    def reload_from_store(self) -> ChunkIndex:
        """Read the index again from the store itself, not the local cache (for `verify`)."""
        with self._lock:
            self._load(cached=False)
            return self._index

    def loose(self) -> dict[str, int]:
        self.index  # noqa: B018 - loads the listing with the index
        return self._loose

    def known(self, refresh: bool = False) -> set[str]:
        """Ids of every stored chunk (indexed, loose, or in a pack being written)."""
        with self._lock:
            if self._index is None or refresh:
                self._load()
            if self._known is None:
                self._known = set(self._index.locations) | set(self._loose)
                if self._packer is not None:
                    self._known |= self._packer._pending
            return self._known

    def forget(self, chunk_ids: Iterable[str]) -> None:
        ids = set(chunk_ids)
        with self._lock:
            if self._known is not None:
                self._known.difference_update(ids)
            if self._index is not None:
                self._index.forget(ids)
            for c in ids:
                self._loose.pop(c, None)

    def object_key(self, chunk_id: str) -> str | None:
        """The key of the object holding the chunk (its pack, or its loose object), None if unknown."""
        loc = self.index.get(chunk_id)
        if loc is not None:
            return loc[0]
        return chunk_key(chunk_id) if chunk_id in self._loose else None

    def stored_size(self, chunk_id: str) -> int | None:
        loc = self.index.get(chunk_id)
        if loc is not None:
            return loc[2]
        return self._loose.get(chunk_id)

    # ---- writing -----------------------------------------------------------------------------
    def packer(self) -> Packer:
        with self._lock:
            if self._packer is None:
                if self._index is None:
                    self._load()
                self._packer = Packer(self.store, self.keyring, self._index, pack_target(self.store),
                                      self.max_chunk)
            return self._packer

    def put(self, chunk_id: str, data: bytes | memoryview, level: int = 1,
            packed: bytes | memoryview | None = None) -> int:
        return self.packer().add_chunk(chunk_id, data, level, packed)

    def put_sealed(self, chunk_id: str, blob: bytes | memoryview) -> None:
        self.packer().add_blob(chunk_id, blob)

    def set_upload(self, upload: Upload) -> None:
        """Upload packs through `upload` (copies: verified at the destination before indexing)."""
        self.packer()._upload = upload

    def commit(self) -> list[str]:
        return self._packer.flush() if self._packer is not None else self.store.commit() or []

    # ---- reading -----------------------------------------------------------------------------
    def sealed(self, chunk_id: str) -> tuple[str, bytes]:
        """(object key, sealed bytes) of a chunk; IntegrityError if it is not stored.

        A chunk this index does not know, or whose pack is gone, may have been written or repacked
        by another process since the index was read: the index is read again (at most every
        `RELOAD_AFTER` seconds) before the chunk counts as missing.
        """
        try:
            return self._sealed(chunk_id)
        except IntegrityError:
            if not self._reload():
                raise
            return self._sealed(chunk_id)

    def _reload(self) -> bool:
        """Read the index again if its files changed since it was read (listing them, at most every
        `RELOAD_AFTER` seconds once a listing found no change); True if it was read again."""
        with self._lock:
            now = time.monotonic()
            if self._unchanged_at is not None and now - self._unchanged_at < RELOAD_AFTER:
                return False
            listed = {i.key for i in self.store.list(INDEX_PREFIX) if i.key.count("/") == 1}
            if self._index is not None and listed == self._index.listed:
                self._unchanged_at = now
                return False
            self._load()
            return True

    def _sealed(self, chunk_id: str) -> tuple[str, bytes]:
        loc = self.index.get(chunk_id)
        if loc is None and self._packer is not None and self._packer.pending(chunk_id):
            self.commit()  # written by this process and not yet durable: make it readable
            loc = self.index.get(chunk_id)
        try:
            if loc is not None:
                return loc[0], self.reader.read(loc)
            if chunk_id in self._loose:
                return chunk_key(chunk_id), self.store.get(chunk_key(chunk_id))
        except ObjectNotFound:
            where = loc[0] if loc is not None else chunk_key(chunk_id)
            raise IntegrityError(f"chunk {chunk_id} is missing: its pack {where} is not in {self.store.display_url}"
                                 ) from None
        if chunk_id in self.index.absent:
            raise IntegrityError(f"chunk {chunk_id} is missing: its pack {self.index.absent[chunk_id]} "
                                 f"is not in {self.store.display_url}")
        raise IntegrityError(f"chunk {chunk_id} is missing from {self.store.display_url} (not in the index; "
                             "if a pack holds it, `seawall repair index` rebuilds the index from the packs)")

    def sealed_many(self, chunk_ids: Iterable[str]) -> dict[str, tuple[str, bytes | memoryview]]:
        """Like `sealed` for many chunks, packed ones read with coalesced ranged GETs."""
        out: dict[str, tuple[str, bytes | memoryview]] = {}
        packed = []
        for c in chunk_ids:
            loc = self.index.get(c)
            if loc is None:
                out[c] = self.sealed(c)
            else:
                packed.append((c, loc))
        try:
            got = self.reader.read_many(packed)
        except ObjectNotFound:  # a pack repacked away since the index was read: one by one
            return {**out, **{c: self.sealed(c) for c, _ in packed}}
        out.update({c: (loc[0], got[c]) for c, loc in packed})
        return out

    def open(self, chunk_id: str, where: str, blob: bytes | memoryview) -> bytes:
        """Authenticate and decrypt a sealed chunk and check it against its id."""
        try:
            data = self.keyring.open(ObjType.CHUNK, chunk_id, blob)
        except IntegrityError as exc:
            raise IntegrityError(f"chunk {chunk_id} in {where} is corrupt: {exc.message}") from None
        if self.keyring.chunk_id(data) != chunk_id:
            raise IntegrityError(f"chunk {chunk_id} in {where}: content does not match its id")
        return data

    def get(self, chunk_id: str) -> bytes:
        where, blob = self.sealed(chunk_id)
        return self.open(chunk_id, where, blob)
