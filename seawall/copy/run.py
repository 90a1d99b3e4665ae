"""Running a copy: the WAL archive first, then the backups' chunks, then each backup's manifest.

- `copy_wal` copies the WAL archive objects the destination lacks (the cluster binding first);
- `copy_backups` copies the chunks the selected backups lack at the destination into new packs there
  (`seawall.copy.chunks`), checks per backup (oldest first) that every chunk (and, for physical
  backups, every WAL segment) it references is now at the destination, and only then writes its
  manifest there;
- `copy_vault` plans and runs both in one call (the flow runs the same steps as separate tasks).
"""

from __future__ import annotations

from collections.abc import Callable

from seawall.copy.chunks import ChunkCopier
from seawall.copy.destination import check_binding
from seawall.copy.plan import CLUSTER_KEY, BackupItem, CopyPlan, plan_copy
from seawall.copy.report import BackupCopy, CopyReport, WalCopy, build_report
from seawall.copy.transfer import CopySettings, ObjectCopier, ObjectRef, TransferStats
from seawall.crypto import ObjType
from seawall.errors import IntegrityError, ObjectNotFound
from seawall.vault import Vault


# ---- WAL ----------------------------------------------------------------------------------------------
def _wal_ref(key: str) -> ObjectRef:
    return ObjectRef.sealed(key, ObjType.RECORD if key == CLUSTER_KEY else ObjType.WAL)



def copy_wal(source: Vault, dest: Vault, plan: CopyPlan, settings: CopySettings,
             stats: TransferStats | None = None, progress: Callable[[int], None] | None = None) -> WalCopy:
    """Copy the WAL objects the destination lacks; returns what moved and what failed."""
    result = WalCopy(present=len(plan.wal_present))
    if CLUSTER_KEY in plan.wal_present:
        check_binding(source, dest)
    stats = stats or TransferStats()
    with ObjectCopier(source, dest, settings, stats) as copier:
        verdicts = copier.copy_many((_wal_ref(k) for k in plan.wal_missing), _progress(progress, plan.wal_sizes))
    for key in plan.wal_missing:
        if verdicts.get(key):
            result.problems.append(verdicts[key])
        else:
            result.copied += 1
            result.bytes_copied += plan.wal_sizes.get(key, 0)
            result.keys.append(key)
    return result


def _progress(progress: Callable[[int], None] | None, sizes: dict[str, int]):
    if progress is None:
        return None
    return lambda ref, verdict: progress(sizes.get(ref.name if ref.obj_type == ObjType.CHUNK else ref.key, 0))


# ---- backups ------------------------------------------------------------------------------------------
class _BackupCopier:
    """Copies the chunks every planned backup lacks at once (into the destination's packs), then
    writes the manifest of each backup whose chunks all arrived."""

    def __init__(self, source: Vault, dest: Vault, plan: CopyPlan, copier: ChunkCopier, wal: WalCopy | None,
                 progress: Callable[[int], None] | None):
        self.source, self.dest, self.plan, self.copier = source, dest, plan, copier
        self.wal_at_dest = plan.wal_present | set(wal.keys if wal else ())
        self.verdicts: dict[str, str | None] = {}  # chunk id → None (at the destination) or problem
        self.progress = progress
        self.credited: set[str] = set()

    def copy_chunks(self) -> None:
        todo = list(dict.fromkeys(c for item in self.plan.items if not item.problem for c in item.missing))
        for chunk_id in todo:
            if chunk_id not in self.plan.source_sizes:
                self.verdicts[chunk_id] = f"chunk {chunk_id} is missing at the source"
        sizes = self.plan.source_sizes
        done = (lambda c, verdict: self.progress(sizes.get(c, 0))) if self.progress else None
        self.verdicts.update(self.copier.copy([c for c in todo if c not in self.verdicts], done))

    def run(self, item: BackupItem) -> BackupCopy:
        result = BackupCopy(item.dataset, item.backup_id, "copied")
        if item.problem:
            return self._failed(result, item.problem)
        for chunk_id in item.missing:
            if self.verdicts.get(chunk_id, "") is None and chunk_id not in self.credited:
                self.credited.add(chunk_id)
                result.chunks_copied += 1
                result.bytes_copied += self.plan.source_sizes.get(chunk_id, 0)
        problem = self.missing_at_dest(item)
        if problem:
            return self._failed(result, problem)
        self.copy_manifest(item)
        return result

    def missing_at_dest(self, item: BackupItem) -> str | None:
        """The manifest-level check: the first referenced object not (verified) at the destination."""
        for chunk_id in item.chunks:
            if chunk_id in self.plan.dest_chunks:
                continue
            verdict = self.verdicts.get(chunk_id, f"chunk {chunk_id} was not copied")
            if verdict:
                return verdict
        for key in item.wal:
            if key not in self.wal_at_dest:
                return f"WAL segment {key} is not at the destination (copy the WAL archive first)"
        return None

    def copy_manifest(self, item: BackupItem) -> None:
        """Copy the sealed manifest last (authenticated at the source, read back at the destination)."""
        self.copier.objects.copy_one(ObjectRef.sealed(item.key, ObjType.MANIFEST))

    @staticmethod
    def _failed(result: BackupCopy, problem: str) -> BackupCopy:
        result.status, result.error = "failed", f"backup {result.dataset}/{result.backup_id}: {problem}"
        return result


def copy_backups(source: Vault, dest: Vault, plan: CopyPlan, settings: CopySettings, wal: WalCopy | None = None,
                 stats: TransferStats | None = None, progress: Callable[[int], None] | None = None,
                 ) -> list[BackupCopy]:
    """Copy every planned backup the destination lacks; one result per selected backup.

    `wal` is the result of `copy_wal` in this run: physical backups need their WAL segments at
    the destination (present before, or copied now) before their manifest is written.

    A backup fails on its own (named chunk, missing WAL) without stopping the others. Errors that
    concern the whole destination (credentials, configuration, a transient error that outlived its
    retries, a pack that stays damaged there) are raised.
    """
    results = [BackupCopy(*key.split("/")[1:], "present") for key in plan.present]
    with ChunkCopier(source, dest, settings, stats) as copier:
        runner = _BackupCopier(source, dest, plan, copier, wal, progress)
        runner.copy_chunks()
        for item in plan.items:
            try:
                results.append(runner.run(item))
            except (IntegrityError, ObjectNotFound) as exc:  # its manifest, at the source
                results.append(_BackupCopier._failed(BackupCopy(item.dataset, item.backup_id, "copied"),
                                                     exc.message))
    return results



def copy_vault(source: Vault, dest: Vault, *, datasets: list[str] | None = None, backups="all",
               include_wal: bool = True, settings: CopySettings | None = None,
               progress: Callable[[int], None] | None = None) -> CopyReport:
    """Plan and copy in one call (the flow runs the same steps as separate tasks).

    Example:
        >>> report = copy_vault(open_vault(SRC, pw), open_vault(DST, pw))  # doctest: +SKIP
        >>> report.ok, report.stats["bytes_copied"]  # doctest: +SKIP
    """
    settings = settings or CopySettings()
    stats = TransferStats()
    plan = plan_copy(source, dest, datasets=datasets, backups=backups, include_wal=include_wal)
    wal = copy_wal(source, dest, plan, settings, stats, progress) if include_wal else None
    results = copy_backups(source, dest, plan, settings, wal, stats, progress)
    return build_report(plan, results, wal, [stats.to_dict()])
