"""In-memory object store for unit tests (same contract as every other backend)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from seawall.errors import ObjectNotFound
from seawall.stores.base import ObjectInfo, ObjectStore


class MemoryStore(ObjectStore):
    """A dict behind a lock. `display_url` is `memory://NAME`."""

    parallel_requests = 1  # a dict under one lock: threads would only queue for it

    def __init__(self, name: str = "test"):
        self.display_url = f"memory://{name}"
        self._objects: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()

    def _put(self, key: str, data: bytes) -> None:
        with self._lock:
            self._objects[key] = (bytes(data), time.time())

    def _put_if_absent(self, key: str, data: bytes) -> bool:
        with self._lock:
            if key in self._objects:
                return False
            self._objects[key] = (bytes(data), time.time())
            return True

    def _get(self, key: str) -> bytes:
        with self._lock:
            try:
                return self._objects[key][0]
            except KeyError:
                raise ObjectNotFound(f"object {key!r} not found in {self.display_url}") from None

    def _stat(self, key: str) -> ObjectInfo | None:
        with self._lock:
            item = self._objects.get(key)
        return None if item is None else ObjectInfo(key, len(item[0]), item[1])

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        with self._lock:
            items = [(k, v) for k, v in self._objects.items() if k.startswith(prefix)]
        for key, (data, mtime) in items:
            yield ObjectInfo(key, len(data), mtime)

    def _delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)
