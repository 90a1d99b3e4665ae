"""One garbage collection run: list, mark, plan, then sweep (see the package docstring), and its report."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

from seawall.gc.listing import check_listing, mark, read_manifests, take_inventory
from seawall.gc.packs import MAX_INDEX_FILES, SMALL_FRACTION, plan_packs, sweep_packs
from seawall.gc.sweep import Sweeper
from seawall.gc.wal import plan_wal
from seawall.stores import ObjectInfo
from seawall.vault import Vault, chunk_key
from seawall.vault.chunks import pack_target


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
