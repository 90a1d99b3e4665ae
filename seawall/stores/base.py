"""The object store protocol every vault backend implements.

Five required operations (`_put`, `_get`, `_stat`, `_list`, `_delete`) plus a conditional put;
everything else is derived here with a working default, as in borgstore and fsspec: `exists`,
`checksum`, `delete_many` (parallel single deletes), Object Lock (a store without it says so, as a
`ConfigError` for what needs it, and reports no retention), `remove_temporaries` (nothing to do
for a store whose writes leave no temporary names). A backend overrides what it does better;
callers never probe with `getattr`/`isinstance`.
Public methods validate keys on the way in; listings skip names we did not write. Objects are
bounded in size by design (chunks are at most a few MiB, manifests small), so the byte-oriented API
never holds a whole user file in memory.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from seawall.errors import ConfigError, ObjectNotFound
from seawall.keys import is_valid_key, validate_key

#: A temporary file of a crashed write older than this is removed by GC (a live write's temporary
#: lives for milliseconds, a backup's deferred chunks until its next commit, seconds).
TEMPORARY_MAX_AGE = 3600.0


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing or `stat` knows about one stored object."""

    key: str
    size: int
    mtime: float | None = None
    storage_class: str | None = None  # as the store reports it (S3: STANDARD, GLACIER ...), None if it has none


@dataclass(frozen=True)
class Fetched:
    """An object's bytes and what the store vouches for about them.

    Attributes:
        data: The bytes read.
        md5: Hex MD5 of the bytes the store holds, computed by the server (S3's ETag, when it is one).
        sha256: Base64 SHA-256 of `data`, computed while reading and checked against the checksum the
            store keeps with the object (None when it keeps none).

    Example:
        >>> Fetched(b"abc").sha256 is None
        True
    """

    data: bytes
    md5: str | None = None
    sha256: str | None = None


class ObjectStore(ABC):
    """A flat key → bytes store with atomic whole-object writes."""

    # Bytes of chunks a pipeline may hand to one worker at once: >0 for stores where an access is
    # CPU work, not a wait (a local disk), 0 where parallel requests matter (S3: one chunk per request).
    batch_bytes: int = 0
    #: True if `put_deferred` returns before the object is stored (it uploads in the background until
    #: `commit`): writers may then seal chunks on their own threads, as on a local disk, without waiting
    #: for a pack's upload.
    background_puts: bool = False

    #: URL-ish description with credentials removed; safe to log.
    display_url: str = "<store>"

    #: The cloud region the objects live in (S3), or None for stores without one.
    region: str | None = None

    #: True if `put_etag` returns the MD5 the server computed over what it stored (S3 ETags).
    put_returns_md5: bool = False

    #: Parallel requests `delete_many` (and GC's retention probes) may use: deletes mostly wait.
    parallel_requests: int = 8
    #: Target size of pack files (seawall.vault.packs): big enough that object count and requests grow
    #: with bytes, not files; small enough that a pack in memory is cheap (see bench/PACKS.md).
    pack_size: int = 16 << 20
    #: True where every access is a network round trip (S3, SFTP): pipelines then keep more requests
    #: in flight and read whole objects rather than many ranges of one.
    remote: bool = False
    #: Bytes a single chunk read fetches ahead within its pack (0: exact ranges; remote stores read
    #: ahead because a restore asks next for the chunks stored right after).
    read_ahead: int = 0
    #: The storage class bulk objects (chunks) are written in; None: the store's default (one tier).
    storage_class: str | None = None

    # ---- required by implementations -------------------------------------------------------
    @abstractmethod
    def _put(self, key: str, data: bytes) -> None:
        """Atomically create or replace `key`."""

    @abstractmethod
    def _put_if_absent(self, key: str, data: bytes) -> bool:
        """Create `key` only if it does not exist; return False if it already existed."""

    @abstractmethod
    def _get(self, key: str) -> bytes:
        """Return the object's bytes or raise ObjectNotFound."""

    @abstractmethod
    def _stat(self, key: str) -> ObjectInfo | None:
        """Return the object's info, or None if it does not exist."""

    @abstractmethod
    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Yield every object whose key starts with `prefix` (any order, any key)."""

    @abstractmethod
    def _delete(self, key: str) -> None:
        """Delete `key`; a missing key is not an error (a retried delete must succeed)."""

    # ---- public, validated API --------------------------------------------------------------
    def put(self, key: str, data: bytes) -> None:
        self._put(validate_key(key), bytes(data) if not isinstance(data, bytes) else data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self._put_if_absent(validate_key(key), data)

    def get(self, key: str) -> bytes:
        return self._get(validate_key(key))

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Bytes `offset` to `offset + length` of `key`, cut short at the object's end (as an HTTP
        range is); ObjectNotFound if the object is missing. For reading a part of a large object
        (one chunk of a pack) without fetching the rest.
        """
        if offset < 0 or length < 0:
            raise ValueError(f"invalid range {offset}+{length}")
        return self._get_range(validate_key(key), offset, length)

    def _get_range(self, key: str, offset: int, length: int) -> bytes:
        """Default: the whole object, sliced (backends that can read a range override this)."""
        return self._get(key)[offset:offset + length]

    def stat(self, key: str) -> ObjectInfo | None:
        return self._stat(validate_key(key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects under `prefix` with valid keys; foreign or temporary names are skipped."""
        for info in self._list(prefix):
            if info.key.startswith(prefix) and is_valid_key(info.key):
                yield info

    def delete(self, key: str) -> None:
        self._delete(validate_key(key))

    def put_deferred(self, key: str, data: bytes) -> None:
        """Store `key`, durable and visible under its name only after `commit()` returns.

        For content-addressed objects written in bulk (chunks): a backend may batch its
        durability work. The default is a plain `put`. A crash before `commit` may leave the object
        absent, never present with partial content. The caller may reuse `data` once this returns
        (packs are built in reused buffers), so a backend that uploads later must copy it.
        """
        self.put(key, data)

    def write_buffer(self, size: int) -> memoryview | None:
        """A buffer of at least `size` bytes that `put_deferred` writes best, or None (any will do).

        The buffer belongs to the calling thread and is reused by its next call: fill it, pass a
        slice of it to `put_deferred`, and let go of it once that returns.
        """
        return None

    def pack_buffer(self, size: int) -> memoryview:
        """A writable buffer of `size` bytes to assemble a pack in (a store may hand out one it
        writes best, e.g. page-aligned for direct I/O); default: a plain bytearray."""
        return memoryview(bytearray(size))

    def commit(self) -> None:  # noqa: B027 - optional hook; most stores have nothing pending
        """Make every `put_deferred` so far durable and visible (default: nothing pending)."""

    # ---- derived ----------------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def checksum(self, key: str) -> str:
        """SHA-256 hex of the stored bytes (backends with server-side hashes may override)."""
        return hashlib.sha256(self.get(key)).hexdigest()

    def fetch(self, key: str) -> Fetched:
        """`get`, with what the store vouches for about the bytes (default: nothing beyond them)."""
        return Fetched(self.get(key))

    def put_etag(self, key: str, data: bytes, *, sha256: str | None = None) -> str | None:
        """`put`; returns the server's MD5 of the stored bytes where `put_returns_md5`, else None."""
        self.put(key, data)
        return None

    def delete_many(self, keys: list[str]) -> None:
        """Delete every key (missing ones count as deleted); default: parallel single deletes.

        On a busy disk an unlink waits for the journal: 8 threads measured 10x faster than one
        (bench/GC.md). Slices of 256 keys per job: one job per key costs as much as a local unlink.
        """
        for key in keys:
            validate_key(key)
        if self.parallel_requests <= 1 or len(keys) < 2 * self.parallel_requests:
            for key in keys:
                self._delete(key)
            return
        slices = [keys[i:i + 256] for i in range(0, len(keys), 256)]
        with ThreadPoolExecutor(self.parallel_requests, thread_name_prefix="seawall-delete") as pool:
            for _ in pool.map(lambda part: [self._delete(k) for k in part], slices):
                pass

    def remove_temporaries(self, older_than: float = TEMPORARY_MAX_AGE) -> list[str]:
        """Remove temporary files of crashed writes older than `older_than` seconds; returns their names.

        Default: nothing to remove (the store's writes are atomic without temporary names).
        """
        return []

    # ---- Object Lock (WORM retention); stores without it refuse what needs it -------------------
    def has_object_lock(self) -> bool:
        """True if objects here may carry a retention that forbids deleting them."""
        return False

    def require_object_lock(self) -> None:
        """ConfigError unless this store can lock objects."""
        raise ConfigError(f"object lock needs an s3:// destination, not {self.display_url}",
                          hint="drop --object-lock-* or copy into an S3 bucket with Object Lock")

    def lock_writes(self, mode: str, days: int) -> None:
        """Make every later write carry retention `mode` for `days` days (checks the store first)."""
        self.require_object_lock()

    def retention(self, key: str) -> tuple[str | None, datetime | None]:
        """(mode, retain-until) of `key`; ObjectNotFound if absent. Default: no retention."""
        if self.stat(key) is None:
            raise ObjectNotFound(f"object {key!r} not found in {self.display_url}")
        return None, None

    def set_retention(self, key: str, mode: str, until: datetime) -> None:
        """Set the retention of `key` (callers only ever extend it)."""
        self.require_object_lock()

    # ---- storage tiers (optional: S3 overrides them) -----------------------------------------------
    def storage_classes(self, prefix: str) -> dict[str, str]:
        """Storage class per object under `prefix`; {} for a store with one tier."""
        return {}

    def needs_retrieval(self, storage_class: str | None) -> bool:
        """True when objects of this class must be retrieved before a read (archive tiers)."""
        return False

    def retrieval_seconds(self, storage_class: str | None, tier: str = "Standard") -> float | None:
        """Worst-case time to make an object of this class readable (None: unknown class)."""
        return 0.0

    def retrieval_state(self, key: str) -> str:
        """`ready`, `archived` (a retrieval must be requested) or `restoring`."""
        return "ready"

    def request_retrieval(self, key: str, *, days: int, tier: str) -> None:  # noqa: B027 - nothing to retrieve
        """Ask for an archived object to be made readable for `days` (retrieval `tier`)."""

    def check_storage_class(self) -> None:  # noqa: B027 - one tier: nothing to check
        """Raise ConfigError when the configured storage class is refused by the endpoint."""

    def set_lifecycle(self, transitions: list) -> list[str]:
        """Make the store move bulk objects through `transitions`; one line per change."""
        from seawall.errors import ConfigError

        raise ConfigError(f"{self.display_url} has no storage tiers", hint="lifecycle rules need an s3:// vault")

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing to release
        """Release connections; the store must not be used afterwards."""

    def __enter__(self) -> ObjectStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.display_url!r})"
