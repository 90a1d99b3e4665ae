"""The object store protocol every vault backend implements.

Five required operations (`_put`, `_get`, `_stat`, `_list`, `_delete`) plus a conditional put;
everything else (`exists`, `checksum`, `copy_to`) is derived here, as in borgstore and fsspec.
Public methods validate keys on the way in; listings skip names we did not write. Objects are
bounded in size by design (chunks are at most a few MiB, manifests small), so the byte-oriented API
never holds a whole user file in memory.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

from seawall.keys import is_valid_key, validate_key


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing or `stat` knows about one stored object."""

    key: str
    size: int
    mtime: float | None = None


class ObjectStore(ABC):
    """A flat key → bytes store with atomic whole-object writes."""

    # Bytes of chunks a pipeline may hand to one worker at once: >0 for stores where an access is
    # CPU work, not a wait (a local disk), 0 where parallel requests matter (S3: one chunk per request).
    batch_bytes: int = 0

    #: URL-ish description with credentials removed; safe to log.
    display_url: str = "<store>"

    #: The cloud region the objects live in (S3), or None for stores without one.
    region: str | None = None

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
        absent, never present with partial content.
        """
        self.put(key, data)

    def write_buffer(self, size: int) -> memoryview | None:
        """A buffer of at least `size` bytes that `put_deferred` writes best, or None (any will do).

        The buffer belongs to the calling thread and is reused by its next call: fill it, pass a
        slice of it to `put_deferred`, and let go of it once that returns.
        """
        return None

    def commit(self) -> None:  # noqa: B027 - optional hook; most stores have nothing pending
        """Make every `put_deferred` so far durable and visible (default: nothing pending)."""

    # ---- derived ----------------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def checksum(self, key: str) -> str:
        """SHA-256 hex of the stored bytes (backends with server-side hashes may override)."""
        return hashlib.sha256(self.get(key)).hexdigest()

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing to release
        """Release connections; the store must not be used afterwards."""

    def __enter__(self) -> ObjectStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.display_url!r})"
