"""Deleting what GC found unneeded, except objects still under S3 Object Lock retention."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from seawall.errors import ObjectNotFound
from seawall.stores import ObjectStore


def lock_probe(store: ObjectStore) -> Callable[[str], datetime | None] | None:
    """A function giving a key's Object Lock retain-until date, or None if the store has no locks."""
    if not store.has_object_lock():
        return None
    return lambda key: _retention_or_none(store, key)


def _retention_or_none(store: ObjectStore, key: str) -> datetime | None:
    try:
        return store.retention(key)[1]
    except ObjectNotFound:
        return None


class Sweeper:
    """Deletes objects, skipping (and listing) those still under Object Lock retention.

    Deletion is the store's `delete_many` (S3: DeleteObjects, 1000 keys per request; elsewhere
    parallel single deletes); retention probes run `store.parallel_requests` at a time.
    """

    def __init__(self, store: ObjectStore, workers: int = 8):
        self.store = store
        self.workers = min(workers, store.parallel_requests)
        self.now = datetime.now(UTC)
        self.locked: list[str] = []

    def _unlocked(self, keys: list[str]) -> list[str]:
        probe = lock_probe(self.store) if keys else None
        if probe is None:
            return keys
        untils = self._map(probe, keys)
        self.locked.extend(k for k, until in zip(keys, untils, strict=True) if until and until > self.now)
        return [k for k, until in zip(keys, untils, strict=True) if not (until and until > self.now)]

    def _map(self, fn: Callable[[str], object], keys: list[str]) -> list:
        if self.workers <= 1 or len(keys) < 2 * self.workers:
            return [fn(k) for k in keys]
        slices = [keys[i:i + 256] for i in range(0, len(keys), 256)]
        with ThreadPoolExecutor(self.workers, thread_name_prefix="seawall-gc") as pool:
            return [r for part in pool.map(lambda ks: [fn(k) for k in ks], slices) for r in part]

    def delete(self, keys: list[str]) -> set[str]:
        """Delete `keys` except those under retention; returns the keys deleted."""
        todo = self._unlocked(keys)
        self.store.delete_many(todo)
        return set(todo)
