"""The chunk index: chunk id → (pack, offset, length), kept in sealed `index/<id>` files.

An index file is written only after every pack it lists is durable, so an index never points into
a half-written pack; a backup's manifest is written only after its index. Index files are merged
(and entries of deleted packs dropped) by GC, which writes the merged files before deleting the
old ones. Several files may list the same chunk (a repack, a crash between those steps): any of
them is a valid copy. `seawall repair index` rebuilds the whole index from the pack headers.

Payload of an index file: for each pack, its 32-byte id, a 4-byte entry count, then the entries
in the pack header's binary form. At most `MAX_ENTRIES` per file (a sealed object's plaintext is
capped at 64 MiB).
"""

from __future__ import annotations

import secrets
import struct
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from seawall.crypto import ObjType
from seawall.errors import IntegrityError, ObjectNotFound
from seawall.vault.cache import IndexCache
from seawall.vault.packs import ENTRY_SIZE, PACK_PREFIX, BlobEntry, decode_entries, encode_entries

INDEX_PREFIX = "index/"
MAX_ENTRIES = 500_000
_PACK = struct.Struct("<32sI")

Location = tuple[str, int, int]  # (pack key, offset, length)


def pack_key_of(pack_id: str) -> str:
    return f"{PACK_PREFIX}{pack_id[:2]}/{pack_id}"


def new_index_key() -> str:
    return INDEX_PREFIX + secrets.token_hex(32)


def encode_index(packs: dict[str, list[BlobEntry]]) -> bytes:
    out = []
    for key, entries in packs.items():
        out.append(_PACK.pack(bytes.fromhex(key.rsplit("/", 1)[1]), len(entries)))
        out.append(encode_entries(entries))
    return b"".join(out)


def decode_index(data: bytes, where: str) -> dict[str, list[BlobEntry]]:
    packs: dict[str, list[BlobEntry]] = {}
    view, pos = memoryview(data), 0
    while pos < len(data):
        if pos + _PACK.size > len(data):
            raise IntegrityError(f"index file {where} is truncated")
        raw, count = _PACK.unpack_from(data, pos)
        pos += _PACK.size
        end = pos + count * ENTRY_SIZE
        if end > len(data):
            raise IntegrityError(f"index file {where} is truncated")
        packs[pack_key_of(raw.hex())] = decode_entries(view[pos:end], f"index file {where}")
        pos = end
    return packs


def split_for_files(packs: dict[str, list[BlobEntry]]) -> Iterator[dict[str, list[BlobEntry]]]:
    """Groups of whole packs of at most MAX_ENTRIES entries each."""
    part: dict[str, list[BlobEntry]] = {}
    count = 0
    for key, entries in packs.items():
        if part and count + len(entries) > MAX_ENTRIES:
            yield part
            part, count = {}, 0
        part[key] = entries
        count += len(entries)
    if part:
        yield part


def write_index(store, keyring, packs: dict[str, list[BlobEntry]]) -> list[str]:
    """Write `packs` as new index file(s) (durable when this returns); returns their keys."""
    keys = []
    for part in split_for_files(packs):
        key = new_index_key()
        store.put(key, keyring.seal(ObjType.INDEX, key, encode_index(part)))
        keys.append(key)
    return keys


class ChunkIndex:
    """The vault's index in memory, and which index files it was read from."""

    def __init__(self) -> None:
        self.locations: dict[str, Location] = {}
        self.files: dict[str, set[str]] = {}  # index key → pack keys it lists
        self.problems: list[str] = []  # index files that did not open
        self.absent: dict[str, str] = {}  # chunk id -> its pack, which the store does not list
        self.copies: dict[str, list[Location]] = {}  # further locations of chunks listed twice
        self.listed: set[str] = set()  # the index files listed when this index was read
        self.lock = threading.Lock()

    def add_packs(self, packs: dict[str, list[BlobEntry]], index_key: str | None = None) -> None:
        with self.lock:
            for pack_key, entries in packs.items():
                for e in entries:
                    loc = (pack_key, e.offset, e.length)
                    first = self.locations.setdefault(e.chunk_id, loc)
                    if first != loc:  # another copy (a repack, a re-upload): kept in case the first is gone
                        self.copies.setdefault(e.chunk_id, []).append(loc)
            if index_key is not None:
                self.files[index_key] = set(packs)

    def drop_absent(self, listed_packs: set[str]) -> None:
        """Forget entries whose pack is not listed (deleted or lost): such chunks count as missing,
        so a backup stores them again instead of referencing them."""
        with self.lock:
            for chunk_id, loc in list(self.locations.items()):
                if loc[0] not in listed_packs:
                    other = [c for c in self.copies.get(chunk_id, ()) if c[0] in listed_packs]
                    if other:
                        self.locations[chunk_id] = other[0]
                        continue
                    self.absent[chunk_id] = loc[0]
                    del self.locations[chunk_id]

    def get(self, chunk_id: str) -> Location | None:
        return self.locations.get(chunk_id)

    def forget(self, chunk_ids: Iterable[str]) -> None:
        with self.lock:
            for c in chunk_ids:
                self.locations.pop(c, None)

    def by_pack(self) -> dict[str, list[BlobEntry]]:
        """Every indexed entry, grouped by pack, in offset order."""
        packs: dict[str, list[BlobEntry]] = {}
        for chunk_id, (pack, off, length) in self.locations.items():
            packs.setdefault(pack, []).append(BlobEntry(chunk_id, off, length))
        for entries in packs.values():
            entries.sort(key=lambda e: e.offset)
        return packs

    def pack_keys(self) -> set[str]:
        return {loc[0] for loc in self.locations.values()}


def load_index(store, keyring, vault_id: str, *, workers: int = 8, cached: bool = True) -> ChunkIndex:
    """Read every index file (from the local cache where it is current; `cached=False` reads every
    file from the store and refreshes the cache: `verify` judges the stored index, not a copy of it).
    A file that does not open is recorded in `problems` (verify reports it; repair rebuilds the
    index), not raised."""
    index = ChunkIndex()
    listed = {i.key: i.size for i in store.list(INDEX_PREFIX) if i.key.count("/") == 1}
    cache = IndexCache(vault_id)

    def one(item: tuple[str, int]) -> tuple[str, dict[str, list[BlobEntry]] | str]:
        key, size = item
        data = cache.get(key, size) if cached else None
        try:
            if data is None:
                data = store.get(key)
                cache.put(key, data)
            return key, decode_index(keyring.open(ObjType.INDEX, key, data), key)
        except ObjectNotFound:
            return key, {}  # merged away by a GC since the listing
        except IntegrityError as exc:
            return key, f"index file {key}: {exc.message}"

    index.listed = set(listed)
    items = sorted(listed.items())
    if len(items) > 1 and workers > 1:
        with ThreadPoolExecutor(min(workers, len(items)), thread_name_prefix="seawall-index") as pool:
            results = list(pool.map(one, items))
    else:
        results = [one(i) for i in items]
    for key, result in results:
        if isinstance(result, str):
            index.problems.append(result)
        else:
            index.add_packs(result, key)
    cache.keep_only(set(listed))
    return index
