"""Which WAL no kept backup needs: everything before the oldest kept physical backup's start."""

from __future__ import annotations

from collections.abc import Iterable

from seawall.manifest import BackupStatus, Manifest
from seawall.postgres import walnames
from seawall.stores import ObjectInfo

PHYSICAL = "postgres-physical"


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
