"""Garbage collection: delete chunks and WAL no remaining backup needs, and nothing else.

Mark and sweep over one listing of the vault (restic `prune`, borg `compact`):

1. **List** every object once. A listing that fails, returns nothing, or looks truncated (the
   vault's key wrappers, every manifest, a kept backup's manifest, a referenced chunk's pack or
   index entry is missing from it) aborts the run with nothing deleted: restic once pruned live
   data after a bad listing. An index file that does not open aborts too (`seawall repair index`).
2. **Mark** every chunk referenced by every remaining manifest, whatever its status (an unfinished
   backup's chunks are kept: retention removes such manifests only after a grace period). A
   manifest that does not open aborts the run: GC would not know which chunks it needs.
3. **Sweep**: packs are deleted or repacked (`seawall.gc_packs`, crash-safe order: new packs and
   index durable before anything old goes), loose v1 chunks nobody needs deleted, and WAL older
   than the oldest kept physical backup's start segment (never a `.history` file, never WAL inside
   a kept backup's window). Objects under S3 Object Lock retention are skipped and reported, not
   errors. (On a versioned bucket a delete leaves a noncurrent version: its bytes go once a
   lifecycle rule expires it.)

Callers hold the vault's exclusive lease (`seawall.lease`), so no backup or copy writes meanwhile;
`before_delete` re-checks it just before the first deletion.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from seawall.errors import (
    IntegrityError,
    ObjectNotFound,
    PermanentError,
    RetryableError,
    SeawallError,
)
from seawall.gc_packs import MAX_INDEX_FILES, SMALL_FRACTION, plan_packs, sweep_packs
from seawall.manifest import BackupStatus, Manifest, is_backup_id
from seawall.postgres import walnames
from seawall.stores import ObjectInfo, ObjectStore
from seawall.streams import ChunkReader
from seawall.vault import Vault, chunk_key
from seawall.vault.chunks import pack_target
from seawall.vault.index import INDEX_PREFIX
from seawall.vault.packs import PACK_PREFIX, is_pack_key
from seawall.verify import referenced_chunks

PHYSICAL = "postgres-physical"
_NOTHING_DELETED = "garbage collection aborted, nothing deleted"


@dataclass
class GcReport:
    """What a GC run found and did (`dry_run`: what it would do)."""

    vault: str
    dry_run: bool
    manifests: int = 0
    chunks_listed: int = 0
    chunks_referenced: int = 0
    chunks_unreferenced: int = 0
    bytes_unreferenced: int = 0
    chunks_deleted: int = 0
    bytes_freed: int = 0
    wal_removable: list[str] = field(default_factory=list)
    wal_bytes: int = 0
    wal_deleted: int = 0
    wal_note: str = ""
    locked: list[str] = field(default_factory=list)
    temporaries_deleted: int = 0  # `.tmp-*` files of crashed writes, older than TEMPORARY_MAX_AGE
    packs_listed: int = 0
    packs_deleted: int = 0  # unused, repacked and unindexed packs deleted
    packs_repacked: int = 0
    packs_unindexed: int = 0  # left by crashed writers: no index lists them
    packs_written: int = 0
    chunks_repacked: int = 0
    index_files_written: int = 0
    index_files_deleted: int = 0
    problems: list[str] = field(default_factory=list)  # packs left alone (damaged blobs)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Inventory:
    """One listing of the whole vault, sorted into what GC cares about."""

    chunks: dict[str, int] = field(default_factory=dict)  # loose (format v1) chunks
    packs: dict[str, int] = field(default_factory=dict)
    index_files: list[str] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)
    wal: list[ObjectInfo] = field(default_factory=list)
    key_wrappers: int = 0
    objects: int = 0  # chunks, manifests and WAL files listed


def _aborted(exc: SeawallError, what: str) -> SeawallError:
    """Re-state a listing/reading error as "GC aborted", keeping its family and exit code."""
    cls = RetryableError if isinstance(exc, RetryableError) else PermanentError
    return cls(f"{_NOTHING_DELETED}: {what}: {exc.message}", hint=exc.hint, exit_code=exc.exit_code)


def take_inventory(store: ObjectStore) -> Inventory:
    """List chunks, manifests and WAL once; any listing error aborts GC before anything is deleted."""
    inv = Inventory()
    try:
        inv.key_wrappers = sum(1 for _ in store.list("keys/"))
        # A tight loop: this listing is most of GC's time on a vault of many small chunks.
        inv.chunks = {i.key[i.key.rfind("/") + 1:]: i.size for i in store.list("chunks/") if i.key.count("/") == 2}
        inv.packs = {i.key: i.size for i in store.list(PACK_PREFIX) if is_pack_key(i.key)}
        inv.index_files = sorted(i.key for i in store.list(INDEX_PREFIX) if i.key.count("/") == 1)
        inv.manifests = sorted(i.key for i in store.list("manifests/") if _is_manifest_key(i.key))
        inv.wal = [i for i in store.list("wal/") if _is_wal_key(i.key)]
    except SeawallError as exc:
        raise _aborted(exc, f"listing {store.display_url} failed") from exc
    inv.objects = len(inv.chunks) + len(inv.packs) + len(inv.index_files) + len(inv.manifests) + len(inv.wal)
    return inv


def _is_manifest_key(key: str) -> bool:
    parts = key.split("/")
    return len(parts) == 3 and is_backup_id(parts[2])


def _is_wal_key(key: str) -> bool:
    parts = key.split("/")
    return len(parts) == 3 and walnames.is_wal_file_name(parts[2])


def read_manifests(vault: Vault, keys: Iterable[str]) -> list[Manifest]:
    """Open every manifest GC must honour; one that does not open aborts the run."""
    out = []
    for key in keys:
        try:
            out.append(vault.read_manifest_key(key))
        except ObjectNotFound as exc:
            raise _aborted(exc, f"manifest {key} vanished while collecting (another prune running?)") from exc
        except IntegrityError as exc:
            raise IntegrityError(f"{_NOTHING_DELETED}: manifest {key} does not open ({exc.message})",
                                 hint="GC cannot tell which chunks it needs: run `seawall verify`") from exc
    return out


def mark(vault: Vault, manifests: Iterable[Manifest]) -> set[str]:
    """Every chunk id the manifests reference, file-tree index entries included."""
    referenced: set[str] = set()
    with ChunkReader(vault) as reader:
        for manifest in manifests:
            try:
                referenced.update(referenced_chunks(vault, manifest, reader))
            except SeawallError as exc:
                raise IntegrityError(
                    f"{_NOTHING_DELETED}: the index of backup {manifest.dataset}/{manifest.backup_id} "
                    f"does not read ({exc.message})", hint="run `seawall verify` to see what is damaged") from exc
    return referenced


def check_listing(inv: Inventory, store: ObjectStore, referenced: set[str], expect: Iterable[str] = (),
                  vault: Vault | None = None) -> None:
    """Refuse to sweep after a listing that looks empty or truncated, or an index that is not whole.

    Raises:
        IntegrityError: the key wrappers, every manifest, an expected manifest, a referenced chunk
            (its index entry or its pack) is not listed, or an index file does not open.
    """
    where = store.display_url
    if not inv.key_wrappers:
        raise IntegrityError(f"{_NOTHING_DELETED}: the listing of {where} looks truncated: it does not even "
                             "show the key wrappers the vault was opened with", hint="retry later")
    unlisted = sorted(set(expect) - set(inv.manifests))
    if unlisted:
        raise IntegrityError(f"{_NOTHING_DELETED}: listing incomplete: {len(unlisted)} kept manifest(s) "
                             f"not listed, first {unlisted[0]}", hint="retry later")
    stored = len(inv.chunks) + len(inv.packs)
    if stored and not inv.manifests:
        raise IntegrityError(f"{_NOTHING_DELETED}: {where} lists {stored} packs and chunks but no manifest: "
                             "refusing to delete every chunk", hint="if the listing is right, the vault holds "
                             "no backup: delete the vault itself instead")
    if referenced and not stored:
        raise IntegrityError(f"{_NOTHING_DELETED}: listing data/ and chunks/ of {where} returned nothing while "
                             f"backups reference {len(referenced)} chunks", hint="retry later")
    index = vault.chunks.index if vault is not None else None
    if index is not None and index.problems:
        raise IntegrityError(f"{_NOTHING_DELETED}: {index.problems[0]}",
                             hint="run `seawall repair index`, then collect garbage again")
    missing = sorted(c for c in referenced if not _located(c, inv, index))
    if missing:
        raise IntegrityError(
            f"{_NOTHING_DELETED}: listing incomplete: {len(missing)} referenced chunk(s) are not in the "
            f"listing or index of {where}, first {missing[0]}",
            hint="retry; if it persists, run `seawall repair index` and `seawall verify`, and remove the "
                 "damaged backups first")


def _located(chunk_id: str, inv: Inventory, index) -> bool:
    if chunk_id in inv.chunks:
        return True
    loc = index.get(chunk_id) if index is not None else None
    return loc is not None and loc[0] in inv.packs


# ---- WAL ------------------------------------------------------------------------------------------
def plan_wal(wal: Iterable[ObjectInfo], manifests: Iterable[Manifest],
             seg_size: int = walnames.DEFAULT_SEG_SIZE) -> tuple[list[ObjectInfo], str]:
    """WAL objects older than what the oldest kept physical backup needs, and a note on why.

    Per cluster (`wal/<system-id>/`): the cutoff is the smallest start segment number among its
    kept physical backups (DONE, and unfinished ones that already know their start). Segments,
    `.partial` and `.backup` files below the cutoff are removable on any timeline: recovery from a
    base backup never reads WAL before its start. `.history` files are always kept. A cluster
    with no DONE physical backup, or a kept backup whose start is unknown, keeps all its WAL.
    """
    by_cluster: dict[str, list[ObjectInfo]] = {}
    for info in wal:
        by_cluster.setdefault(info.key.split("/")[1], []).append(info)
    removable: list[ObjectInfo] = []
    notes: list[str] = []
    physical = [m for m in manifests if m.kind == PHYSICAL]
    for sysid, objects in sorted(by_cluster.items()):
        cutoff, note = _wal_cutoff([m for m in physical if str(m.source.get("system_identifier")) == sysid],
                                   seg_size)
        notes.append(f"cluster {sysid}: {note}")
        if cutoff is not None:
            removable.extend(i for i in objects if _segno(i.key.rsplit("/", 1)[1], seg_size) < cutoff)
    return removable, "; ".join(notes)


def _wal_cutoff(kept: list[Manifest], seg_size: int) -> tuple[int | None, str]:
    done = [m for m in kept if m.status == BackupStatus.DONE]
    if not done:
        return None, "no kept DONE physical backup, all WAL kept"
    oldest_done = min(m.started_at for m in done)
    starts = []
    for m in kept:
        start = m.source.get("start_wal_file")
        if start:
            starts.append(walnames.parse_segment(start, seg_size)[1])
        elif m.status == BackupStatus.DONE or m.started_at <= oldest_done:
            return None, f"start segment of backup {m.backup_id} unknown, all WAL kept"
    cutoff = min(starts)
    return cutoff, f"WAL before segment number {cutoff:X} removable"


def _segno(name: str, seg_size: int) -> float:
    """Segment number a WAL file belongs to; infinity for files that are never removed."""
    if walnames.is_history(name):
        return float("inf")
    return walnames.parse_segment(name[:24], seg_size)[1]


# ---- sweeping -------------------------------------------------------------------------------------
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


def collect_garbage(vault: Vault, *, dry_run: bool = False, exclude: Iterable[str] = (),
                    expect: Iterable[str] = (), before_delete: Callable[[], None] | None = None,
                    workers: int = 8) -> GcReport:
    """Mark and sweep the vault (see the module docstring).

    Args:
        vault: The opened vault; the caller holds its exclusive lease.
        dry_run: Only report what would be deleted.
        exclude: Manifest keys about to be removed (a dry run's preview of a retention plan).
        expect: Manifest keys that must be in the listing (the backups retention keeps).
        before_delete: Called once before the first deletion (e.g. `lease.check`).
        workers: Parallel deletions.

    Returns:
        The report; `bytes_freed` counts stored bytes of deleted chunks and WAL.

    Raises:
        IntegrityError: The listing looks truncated or a manifest does not open (nothing deleted).
    """
    report = GcReport(vault=vault.url, dry_run=dry_run)
    clock = time.perf_counter()
    inv = take_inventory(vault.store)
    vault.known_chunks(refresh=True)  # the index as of now (a listing of index/ behind the cache)
    report.chunks_listed, report.packs_listed = len(inv.chunks), len(inv.packs)
    report.seconds["list"], clock = time.perf_counter() - clock, time.perf_counter()
    excluded = set(exclude)
    manifests = read_manifests(vault, [k for k in inv.manifests if k not in excluded])
    referenced = mark(vault, manifests)
    check_listing(inv, vault.store, referenced, expect, vault)
    report.manifests, report.chunks_referenced = len(manifests), len(referenced)
    report.seconds["mark"], clock = time.perf_counter() - clock, time.perf_counter()
    victims = sorted(c for c in inv.chunks if c not in referenced)
    plan = plan_packs(vault.chunks.index, inv.packs, referenced, small=pack_target(vault.store) // SMALL_FRACTION)
    wal, report.wal_note = plan_wal(inv.wal, manifests, _seg_size(vault))
    report.chunks_unreferenced = len(victims) + len(plan.dead_chunks)
    report.bytes_unreferenced = sum(inv.chunks[c] for c in victims) + plan.dead_bytes
    report.packs_unindexed, report.chunks_repacked = len(plan.unindexed), plan.live_moved
    report.wal_removable = [i.key for i in wal]
    report.wal_bytes = sum(i.size for i in wal)
    if not dry_run:
        if before_delete is not None:
            before_delete()
        sweeper = Sweeper(vault.store, workers)
        if plan.changes or len(inv.index_files) > MAX_INDEX_FILES:
            sweep_packs(vault, report, plan, inv, referenced, sweeper)
        if victims or wal:
            _sweep(vault, report, victims, inv.chunks, wal, sweeper)
        report.locked = sorted(sweeper.locked)
        report.temporaries_deleted = len(vault.store.remove_temporaries())
    report.seconds["sweep"] = time.perf_counter() - clock
    return report


def _sweep(vault: Vault, report: GcReport, victims: list[str], sizes: dict[str, int],
           wal: list[ObjectInfo], sweeper: Sweeper) -> None:
    done = sweeper.delete([chunk_key(c) for c in victims])
    deleted = [c for c in victims if chunk_key(c) in done]
    vault.forget_chunks(deleted)
    wal_done = sweeper.delete([i.key for i in wal])
    report.chunks_deleted += len(deleted)
    report.wal_deleted = len(wal_done)
    report.bytes_freed += sum(sizes[c] for c in deleted) + sum(i.size for i in wal if i.key in wal_done)


def _seg_size(vault: Vault) -> int:
    from seawall.postgres.wal import WalArchive

    return WalArchive(vault).seg_size


def delete_manifests(vault: Vault, keys: list[str], workers: int = 8) -> tuple[list[str], list[str]]:
    """Delete backup manifests; returns (deleted keys, keys skipped under Object Lock)."""
    sweeper = Sweeper(vault.store, workers)
    done = sweeper.delete(keys)
    return [k for k in keys if k in done], sorted(sweeper.locked)
