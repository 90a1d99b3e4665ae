"""Pack files: many sealed chunks in one object, self-describing (restic's pack format, adapted).

A pack object `data/<ab>/<pack-id>` is::

    blob_1 | blob_2 | ... | blob_n | sealed header | header length (4 bytes, little endian)

Each blob is a sealed chunk exactly as a v1 `chunks/` object is (its own AES-GCM tag, the chunk
id bound in), so a chunk authenticates on its own and is read with one ranged GET. The header
lists every blob as (type, chunk id, offset, length) and is sealed as `ObjType.PACK` bound to the
pack's key: a pack copied under another name does not open, and `seawall repair index` can rebuild
the index from headers alone. Pack ids are random (a pack's key is needed before it is complete).

`PackBuilder` assembles one pack in memory up to its target size; `Packer` (seawall.vault.packer)
keeps a few of them open for parallel writers.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass

from seawall.crypto import ObjType
from seawall.errors import IntegrityError

PACK_PREFIX = "data/"
# type (1), chunk id (32 raw bytes), offset (4), length (4): offsets fit 32 bits, packs stay < 4 GiB
_ENTRY = struct.Struct("<B32sII")
ENTRY_SIZE = _ENTRY.size
_TRAILER = struct.Struct("<I")
BLOB_CHUNK = 0  # the one blob type so far (file data and tree metadata are both chunks)


@dataclass(frozen=True)
class BlobEntry:
    """One chunk inside a pack: where its sealed bytes are."""

    chunk_id: str
    offset: int
    length: int
    type: int = BLOB_CHUNK


def new_pack_key() -> str:
    pack_id = secrets.token_hex(32)
    return f"{PACK_PREFIX}{pack_id[:2]}/{pack_id}"


def is_pack_key(key: str) -> bool:
    parts = key.split("/")
    return len(parts) == 3 and parts[0] == "data" and len(parts[2]) == 64 and parts[2][:2] == parts[1]


def encode_entries(entries: list[BlobEntry]) -> bytes:
    return b"".join(_ENTRY.pack(e.type, bytes.fromhex(e.chunk_id), e.offset, e.length) for e in entries)


def decode_entries(data: bytes | memoryview, where: str) -> list[BlobEntry]:
    if len(data) % ENTRY_SIZE:
        raise IntegrityError(f"{where}: entry table of {len(data)} bytes is not a whole number of entries")
    return [BlobEntry(raw.hex(), off, length, typ) for typ, raw, off, length in _ENTRY.iter_unpack(data)]


class PackBuilder:
    """One pack being assembled: sealed blobs appended in a buffer, then `finish` adds the header.

    The buffer is allocated once at `capacity` (target + one largest sealed chunk), so sealing
    writes straight into it and no blob is copied again.
    """

    def __init__(self, capacity: int, allocate=None):
        self.key = new_pack_key()
        self._allocate = allocate or (lambda n: memoryview(bytearray(n)))
        self.buf: memoryview = self._allocate(capacity)
        self.size = 0
        self.entries: list[BlobEntry] = []

    def _grow(self, end: int) -> None:
        """Room for `end` bytes (rare: a blob or header larger than planned)."""
        if end > len(self.buf):
            bigger = self._allocate(end + (64 << 10))
            bigger[:self.size] = self.buf[:self.size]
            self.buf = bigger

    def room(self) -> int:
        return len(self.buf) - self.size

    def tail(self) -> memoryview:
        """Where the next blob goes (fill it, then `added`)."""
        return self.buf[self.size:]

    def added(self, chunk_id: str, length: int) -> BlobEntry:
        entry = BlobEntry(chunk_id, self.size, length)
        self.entries.append(entry)
        self.size += length
        return entry

    def append(self, chunk_id: str, blob: bytes | memoryview) -> BlobEntry:
        """Add an already sealed blob (copies, repacks)."""
        self._grow(self.size + len(blob))
        self.buf[self.size:self.size + len(blob)] = blob
        return self.added(chunk_id, len(blob))

    def finish(self, keyring) -> memoryview:
        """The whole pack: blobs, sealed header, header length. The builder is done afterwards."""
        header = keyring.seal(ObjType.PACK, self.key, encode_entries(self.entries))
        end = self.size + len(header) + _TRAILER.size
        self._grow(end)
        self.buf[self.size:self.size + len(header)] = header
        _TRAILER.pack_into(self.buf, self.size + len(header), len(header))
        return self.buf[:end]


def header_length(tail: bytes, key: str, pack_size: int) -> int:
    """The sealed header's length, from the pack's last 4 bytes."""
    if len(tail) < _TRAILER.size:
        raise IntegrityError(f"pack {key} is too short to be a pack")
    (length,) = _TRAILER.unpack(tail[-_TRAILER.size:])
    if length + _TRAILER.size > pack_size or length < 34:
        raise IntegrityError(f"pack {key} has an invalid header length {length}")
    return length


def open_header(keyring, key: str, sealed: bytes, data_end: int) -> list[BlobEntry]:
    """Authenticate and decode a pack header; every entry must lie inside the blob area."""
    try:
        plain = keyring.open(ObjType.PACK, key, sealed)
    except IntegrityError as exc:
        raise IntegrityError(f"pack {key}: header {exc.message}") from None
    entries = decode_entries(plain, f"pack {key}")
    for e in entries:
        if e.offset + e.length > data_end:
            raise IntegrityError(f"pack {key}: entry {e.chunk_id[:12]} lies outside the pack")
    return entries


def read_header(store, keyring, key: str, size: int | None = None) -> list[BlobEntry]:
    """The entries of the pack at `key`, read with two ranged GETs (trailer, then header)."""
    if size is None:
        info = store.stat(key)
        if info is None:
            raise IntegrityError(f"pack {key} is missing")
        size = info.size
    tail = store.get_range(key, max(0, size - 4), 4)
    length = header_length(tail, key, size)
    start = size - _TRAILER.size - length
    return open_header(keyring, key, store.get_range(key, start, length), start)


def parse_pack(keyring, key: str, data: bytes) -> list[BlobEntry]:
    """The entries of a whole pack held in memory (verify, repack)."""
    length = header_length(data[-4:], key, len(data))
    start = len(data) - _TRAILER.size - length
    return open_header(keyring, key, data[start:start + length], start)
