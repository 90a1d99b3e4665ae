"""The pack side of garbage collection: which packs to delete or repack, and doing it crash-safely.

Per pack (restic `prune`): a pack no index lists was left by a crashed writer (no manifest can
reference it: the index is written before any manifest) and is deleted; a pack none of whose chunks
a backup needs is deleted; a pack whose unneeded bytes reach `max_unused` of its size is repacked
(its needed chunks copied into new packs) and deleted. The order makes every crash harmless:

1. new packs written and durable, with an index file of their own;
2. the merged index (every entry of the packs that stay, and the new packs) written;
3. the old index files deleted (one under Object Lock stays: the packs it lists then stay too);
4. only then the repacked, unused and unindexed packs deleted.

A crash between any two steps leaves an index whose every entry points into an existing pack
(entries may be listed twice: either copy is valid).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from seawall.errors import SeawallError
from seawall.vault import Vault
from seawall.vault.index import ChunkIndex, split_for_files, write_index
from seawall.vault.packs import BlobEntry

#: Repack a pack once this share of its bytes is no longer needed (restic's --max-unused is 5% of
#: the repository; per pack, a higher bar repacks less often: each repack rewrites the live bytes).
MAX_UNUSED = 0.25
#: Packs smaller than the target size divided by this are repacked together (two or more of them).
SMALL_FRACTION = 4
#: Merge index files once there are more than this many, even if no pack changes.
MAX_INDEX_FILES = 8


def max_unused() -> float:
    try:
        return float(os.environ.get("SEAWALL_GC_MAX_UNUSED", MAX_UNUSED))
    except ValueError:
        return MAX_UNUSED


@dataclass
class PackPlan:
    """What GC does with packs (sizes are stored bytes)."""

    delete: list[str] = field(default_factory=list)  # no needed chunk
    repack: list[str] = field(default_factory=list)  # needed chunks move to new packs first
    unindexed: list[str] = field(default_factory=list)  # written by a crashed run, never indexed
    dead_chunks: set[str] = field(default_factory=set)  # indexed, not needed, in packs that go
    dead_bytes: int = 0
    unused_bytes: int = 0  # unneeded blob bytes in every pack, repacked or not
    live_moved: int = 0  # chunks repacked

    @property
    def changes(self) -> bool:
        return bool(self.delete or self.repack or self.unindexed)


def plan_packs(index: ChunkIndex, listed: dict[str, int], referenced: set[str],
               threshold: float | None = None, small: int = 0) -> PackPlan:
    """Packs to delete and to repack. Besides packs over the `threshold` of unneeded bytes, packs
    smaller than `small` bytes are repacked together once there are two or more (each small backup
    leaves one: restic's `--repack-small`), so their number does not grow with the backups."""
    threshold = max_unused() if threshold is None else threshold
    plan = PackPlan()
    smalls: list[tuple[str, list[BlobEntry]]] = []
    by_pack = index.by_pack()
    for key in sorted(set(listed) - set(by_pack)):
        plan.unindexed.append(key)
    for key, entries in sorted(by_pack.items()):
        if key not in listed:
            continue  # check_listing made sure no needed chunk is here
        dead = [e for e in entries if e.chunk_id not in referenced]
        dead_bytes = sum(e.length for e in dead)
        plan.unused_bytes += dead_bytes + max(0, listed[key] - sum(e.length for e in entries))
        if not dead or (dead_bytes < threshold * listed[key] and listed[key] < small):
            if listed[key] < small:
                smalls.append((key, entries))
            continue
        if len(dead) == len(entries):
            plan.delete.append(key)
        elif dead_bytes >= threshold * listed[key]:
            plan.repack.append(key)
            plan.live_moved += len(entries) - len(dead)
        else:
            continue
        plan.dead_chunks.update(e.chunk_id for e in dead)
        plan.dead_bytes += dead_bytes
    if len(smalls) >= 2:
        for key, entries in smalls:
            plan.repack.append(key)
            dead = [e for e in entries if e.chunk_id not in referenced]
            plan.live_moved += len(entries) - len(dead)
            plan.dead_chunks.update(e.chunk_id for e in dead)
            plan.dead_bytes += sum(e.length for e in dead)
    return plan


def repack(vault: Vault, plan: PackPlan, referenced: set[str], problems: list[str]
           ) -> tuple[dict[str, list[BlobEntry]], list[str]]:
    """Copy the needed chunks of `plan.repack` into new packs; returns (the new packs' entries,
    the index files written for them).

    A blob that does not authenticate is not copied: its pack stays (and is reported) instead.
    """
    chunks = vault.chunks
    packer = chunks.packer()
    by_pack = chunks.index.by_pack()
    kept: list[str] = []
    for key in plan.repack:
        live = [(e.chunk_id, (key, e.offset, e.length)) for e in by_pack[key] if e.chunk_id in referenced]
        try:
            blobs = chunks.reader.read_many(live)
            for chunk_id, _ in live:
                chunks.open(chunk_id, key, blobs[chunk_id])  # never move damaged bytes
        except SeawallError as exc:
            problems.append(f"pack {key} not repacked: {exc.message}")
            kept.append(key)
            continue
        for chunk_id, _ in live:
            packer.add_blob(chunk_id, blobs[chunk_id])
    for key in kept:
        plan.repack.remove(key)
    packer.flush()
    return packer.last_flushed, packer.last_index


def merged_index(index: ChunkIndex, gone: set[str], new: dict[str, list[BlobEntry]]) -> dict[str, list[BlobEntry]]:
    """Every entry in packs that stay, chunks in new packs listed there (not in their old pack)."""
    moved = {e.chunk_id for entries in new.values() for e in entries}
    merged = {k: [e for e in v if e.chunk_id not in moved] for k, v in index.by_pack().items() if k not in gone}
    merged = {k: v for k, v in merged.items() if v}
    merged.update(new)
    return merged


def rewrite_index(vault: Vault, merged: dict[str, list[BlobEntry]], old_files: list[str], sweeper) -> set[str]:
    """Write the merged index, then delete `old_files`; returns the packs that old index files
    still list because Object Lock kept those files (such packs must not be deleted)."""
    index = vault.chunks.index
    written = set(write_index(vault.store, vault.keyring, merged))
    old = [k for k in old_files if k not in written]
    deleted = sweeper.delete(old)
    protected: set[str] = set()
    for key in old:
        if key not in deleted:
            protected |= index.files.get(key, set())
    return protected


def sweep_packs(vault: Vault, report, plan: PackPlan, inv, referenced: set[str], sweeper) -> None:
    """Repack, rewrite the index, then delete packs: in that order (see the module docstring)."""
    index = vault.chunks.index
    old_packs = index.by_pack()
    packer = vault.chunks.packer()
    written_before = packer.bytes_written
    new, new_files = repack(vault, plan, referenced, report.problems)
    written = packer.bytes_written - written_before
    gone = set(plan.delete) | set(plan.repack) | set(plan.unindexed) | (set(old_packs) - set(inv.packs))
    merged = merged_index(index, gone, new)
    protected = rewrite_index(vault, merged, list(inv.index_files) + new_files, sweeper)
    report.index_files_written = len(list(split_for_files(merged)))
    report.index_files_deleted = len(inv.index_files) + len(new_files) - sum(
        1 for k in inv.index_files + new_files if k in sweeper.locked)
    doomed = sorted((gone - protected) & set(inv.packs))
    deleted = sweeper.delete(doomed)
    report.packs_deleted = len(deleted)
    report.packs_repacked = sum(1 for k in plan.repack if k in deleted)
    report.packs_written = len(new)
    dead = {e.chunk_id for k in deleted for e in old_packs.get(k, []) if e.chunk_id not in referenced}
    report.chunks_deleted += len(dead)
    report.bytes_freed += max(0, sum(inv.packs[k] for k in deleted) - written)
    vault.known_chunks(refresh=True)
