"""Backups in archive storage tiers: which tier a backup sits in, the RTO that implies, and the
retrieval (restore request, wait with progress) that must come before a restore reads it.

A backup's tier is the coldest storage class among the chunks it needs: lifecycle rules move
objects by age, and deduplication makes tonight's backup reference chunks written months ago, so
even the newest backup can need a retrieval. Its implied RTO is the measured restore time (the
ledger's last RTO for the dataset) plus the tier's worst-case retrieval time from the store's table
(`seawall/stores/s3_tiers.py`).

File-tree backups keep their file list in tree chunks: when those are archived too, the retrieval
runs in two rounds (tree chunks, then the file chunks the tree names).

Example:
    ```python
    from seawall.retrieval import backup_tier, retrieve
    tier = backup_tier(vault, manifest)          # BackupTier(storage_class="DEEP_ARCHIVE", ...)
    retrieve(vault, manifest, days=3, tier="Standard")
    ```
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from seawall import progress
from seawall.errors import ConfigError, ObjectArchived, RetryableError
from seawall.manifest import Manifest
from seawall.vault import Vault, chunk_key

POLL_ENV = "SEAWALL_RETRIEVAL_POLL_SECONDS"
TIMEOUT_ENV = "SEAWALL_RETRIEVAL_TIMEOUT_SECONDS"
DAYS_ENV = "SEAWALL_RETRIEVAL_DAYS"
TIER_ENV = "SEAWALL_RETRIEVAL_TIER"
_RANK = ("STANDARD", "INTELLIGENT_TIERING", "STANDARD_IA", "ONEZONE_IA", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE")
_WORKERS = 16


@dataclass(frozen=True)
class BackupTier:
    """Where a backup's chunks are and what a restore must wait for first."""

    storage_class: str  # the coldest class among its chunks ("STANDARD" when all are hot or the store has one tier)
    objects: int  # chunks looked at
    archived: int  # of which need a retrieval before reading
    retrieval_s: float | None  # worst-case retrieval time of the coldest class (None: unknown class)
    retrieval_tier: str
    complete: bool  # False when archived tree chunks hid the file chunks (the count is a lower bound)

    def implied_rto(self, measured_s: float | None) -> float | None:
        if measured_s is None or self.retrieval_s is None:
            return None
        return measured_s + (self.retrieval_s if self.archived else 0.0)

    def to_dict(self) -> dict:
        return asdict(self)


def settings() -> tuple[int, str]:
    """(days a retrieved copy stays readable, retrieval tier) from the environment."""
    tier = os.environ.get(TIER_ENV, "Standard").capitalize()
    if tier not in ("Expedited", "Standard", "Bulk"):
        raise ConfigError(f"{TIER_ENV}={tier!r} is not a retrieval tier", hint="use Expedited, Standard or Bulk")
    try:
        days = int(os.environ.get(DAYS_ENV, "3"))
    except ValueError:
        days = 0
    if days < 1:
        raise ConfigError(f"{DAYS_ENV} must be a whole number of days ≥ 1")
    return days, tier


def _coldest(classes: list[str]) -> str:
    known = [c for c in classes if c in _RANK]
    unknown = [c for c in classes if c not in _RANK]
    if unknown:
        return unknown[0]
    return max(known, key=_RANK.index, default="STANDARD")


def _stream_ids(manifest: Manifest) -> list[str]:
    return list(dict.fromkeys(c[0] for s in manifest.streams for c in s.chunks))


def _file_ids(vault: Vault, manifest: Manifest) -> list[str]:
    from seawall.sources.tree import iter_entries
    from seawall.streams import ChunkReader

    ids: list[str] = []
    with ChunkReader(vault) as reader:
        for stream in manifest.streams:
            if stream.kind == "tree":
                for entry in iter_entries(reader.iter_stream(stream)):
                    ids.extend(entry.stored_ids())
    return list(dict.fromkeys(ids))


def bulk_classes(store) -> dict[str, str]:
    """Storage class per pack and loose chunk object (one listing each)."""
    return {**store.storage_classes("data/"), **store.storage_classes("chunks/")}


def backup_tier(vault: Vault, manifest: Manifest, classes: dict[str, str] | None = None) -> BackupTier:
    """The coldest storage class among a backup's chunks and its retrieval time (one listing)."""
    store = vault.store
    classes = bulk_classes(store) if classes is None else classes
    _days, tier = settings()
    if all(c == "STANDARD" for c in classes.values()):  # one tier, or nothing moved yet: no tree to read
        return BackupTier("STANDARD", len(_stream_ids(manifest)), 0, 0.0, tier, complete=False)
    ids, complete = _stream_ids(manifest), True
    if any(s.kind == "tree" for s in manifest.streams):
        try:  # the file list is in tree chunks: readable unless archived and not retrieved
            ids = list(dict.fromkeys(ids + _file_ids(vault, manifest)))
        except ObjectArchived:
            complete = False
    objects = list(dict.fromkeys(vault.chunk_object(c) or chunk_key(c) for c in ids))
    found = [classes.get(k, "STANDARD") for k in objects]
    coldest = _coldest(found)
    return BackupTier(storage_class=coldest, objects=len(objects),
                      archived=sum(store.needs_retrieval(c) for c in found),
                      retrieval_s=store.retrieval_seconds(coldest, tier), retrieval_tier=tier,
                      complete=complete)


def retrieve(vault: Vault, manifest: Manifest, *, days: int | None = None, tier: str | None = None,
             poll_s: float | None = None, timeout_s: float | None = None) -> dict:
    """Request the retrieval of every archived chunk a backup needs and wait until all are readable.

    Idempotent: chunks already retrieved or being retrieved are not asked for again. Progress goes
    to the process-wide hook (`seawall.progress`) as objects become readable.

    Returns:
        {"requested", "archived", "waited_s", "rounds"}; all zero for a backup with nothing archived.
    """
    env_days, env_tier = settings()
    days, tier = days or env_days, tier or env_tier
    poll_s = float(os.environ.get(POLL_ENV, "60")) if poll_s is None else poll_s
    timeout_s = float(os.environ.get(TIMEOUT_ENV, str(72 * 3600))) if timeout_s is None else timeout_s
    started = time.monotonic()
    report = {"requested": 0, "archived": 0, "waited_s": 0.0, "rounds": 0}
    rounds = [lambda: _stream_ids(manifest)]
    if any(s.kind == "tree" for s in manifest.streams):
        rounds.append(lambda: _file_ids(vault, manifest))
    for ids_of in rounds:
        classes = bulk_classes(vault.store)
        if not any(map(vault.store.needs_retrieval, {None, *classes.values()})):
            # Nothing in an archive tier (a local store has none): listing the backup's objects
            # would find none to ask for, and for a tree backup it reads the whole file index
            # (~20 ms of a ~1.2 s delta restore of a 1 GB data directory).
            continue
        objects = dict.fromkeys(vault.chunk_object(c) or chunk_key(c) for c in ids_of())
        keys = [k for k in objects if vault.store.needs_retrieval(classes.get(k))]
        if keys:
            report["rounds"] += 1
            report["archived"] += len(keys)
            report["requested"] += _request(vault, keys, days, tier)
            _wait(vault, keys, poll_s, started + timeout_s)
    report["waited_s"] = round(time.monotonic() - started, 3)
    return report


def _states(vault: Vault, keys: list[str]) -> dict[str, str]:
    with ThreadPoolExecutor(min(_WORKERS, len(keys)) or 1, thread_name_prefix="seawall-thaw") as pool:
        return dict(zip(keys, pool.map(vault.store.retrieval_state, keys), strict=True))


def _request(vault: Vault, keys: list[str], days: int, tier: str) -> int:
    todo = [k for k, state in _states(vault, keys).items() if state == "archived"]
    ask: Callable[[str], None] = lambda k: vault.store.request_retrieval(k, days=days, tier=tier)  # noqa: E731
    with ThreadPoolExecutor(min(_WORKERS, len(todo)) or 1, thread_name_prefix="seawall-thaw") as pool:
        list(pool.map(ask, todo))
    return len(todo)


def _wait(vault: Vault, keys: list[str], poll_s: float, deadline: float) -> None:
    tick = progress.reporter(f"retrieving {len(keys)} archived objects", len(keys))
    pending = list(keys)
    while True:
        states = _states(vault, pending)
        ready = [k for k in pending if states[k] == "ready"]
        if tick and ready:
            tick(len(ready))
        pending = [k for k in pending if states[k] != "ready"]
        if not pending:
            return
        if time.monotonic() + poll_s > deadline:
            raise RetryableError(f"{len(pending)} of {len(keys)} archived objects of {vault.url} are still "
                                 f"being retrieved (e.g. {pending[0]})",
                                 hint="run the restore again later: retrievals already asked for continue")
        time.sleep(poll_s)


def add_tiers(vault: Vault, rows: list[dict]) -> list[dict]:
    """`seawall status` rows with the last backup's tier, its retrieval time and the implied RTO
    (the measured restore of the last verification plus that retrieval)."""
    classes = bulk_classes(vault.store)
    for row in rows:
        tier = None
        if row.get("last_backup_id"):
            manifest = vault.find_backup(row["last_backup_id"], row["dataset"])
            tier = backup_tier(vault, manifest, classes)
        row["last_backup_tier"] = tier.storage_class if tier else None
        row["last_backup_archived_objects"] = tier.archived if tier else None
        row["retrieval_s"] = (tier.retrieval_s if tier.archived else 0.0) if tier else None
        row["implied_rto_s"] = tier.implied_rto(row.get("last_rto_s")) if tier else None
    return rows
