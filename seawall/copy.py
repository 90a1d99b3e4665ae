"""Cross-region copy: every backup offsite, verified, immutable, resumable.

A destination vault shares the source's master key (its own wrapper, with the destination's
passphrase) and chunker parameters, so sealed chunks, manifests and WAL move byte-for-byte (chunks
repacked into the destination's own packs) and the DR side restores on its own.
`prepare_destination` creates it from the source (`--init-dest`) or checks it; then `plan_copy`
(seawall.copy_plan) lists each side once, and

- `copy_wal` copies the WAL archive objects the destination lacks (the cluster binding first);
- `copy_backups` copies the chunks the selected backups lack at the destination into new packs there
  (`seawall.copy_chunks`: authenticated at the source, packs verified at the destination, then
  indexed), checks per backup (oldest first) that every chunk (and, for physical backups, every WAL
  segment) it references is now at the destination, and only then writes its manifest there. A
  backup whose chunk failed at the source fails naming the chunk and its pack; the others proceed. A
  killed copy leaves packs but no manifest: a rerun copies the rest."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from seawall.copy_chunks import ChunkCopier
from seawall.copy_plan import CLUSTER_KEY, BackupItem, CopyPlan
from seawall.copy_transfer import CopySettings, ObjectCopier, ObjectRef, TransferStats
from seawall.crypto import ObjType
from seawall.errors import ConfigError, IntegrityError, ObjectNotFound, VaultNotInitialised
from seawall.stores import ObjectStore
from seawall.vault import Vault

_PROBE = b"seawall-copy-key-probe"


# ---- the destination --------------------------------------------------------------------------------
def init_destination(source: Vault, store: ObjectStore, passphrase: str, **options) -> Vault:
    """Create a destination vault holding the source's master key, wrapped by `passphrase`.

    Args:
        source: The opened source vault.
        store: The (empty) destination location.
        passphrase: The destination's own passphrase (may differ from the source's).
        **options: Further `Vault.init` options (`scrypt`).
    """
    return Vault.init(store, passphrase, keyring=source.keyring, chunker=source.config.chunker, **options)


def same_location(a: str, b: str) -> bool:
    """True when two store URLs name the same place (local paths are resolved)."""
    def norm(url: str) -> str:
        return "file://" + os.path.realpath(url[7:]) if url.startswith("file://") else url.rstrip("/")
    return norm(a) == norm(b)


def check_pair(source: Vault, dest: Vault) -> None:
    """Refuse the same vault twice, another master key, or other chunker parameters."""
    if same_location(source.url, dest.url) or source.config.vault_id == dest.config.vault_id:
        raise ConfigError(f"source and destination are the same vault ({source.url}, id {source.config.vault_id})",
                          hint="copy to a vault in another location (another bucket, region or folder)")
    probe = source.keyring.seal(ObjType.RECORD, "copy-probe", _PROBE)
    try:
        same_key = dest.keyring.open(ObjType.RECORD, "copy-probe", probe) == _PROBE
    except IntegrityError:
        same_key = False
    if not same_key or source.keyring.chunk_id(_PROBE) != dest.keyring.chunk_id(_PROBE):
        raise ConfigError(f"destination vault {dest.url} has another master key than the source",
                          hint="a copy destination must be created from the source: "
                               "`seawall copy --from SRC --to DEST --init-dest` into an empty location")
    if source.config.chunker != dest.config.chunker:
        raise ConfigError(f"destination vault {dest.url} uses other chunker parameters than the source",
                          hint="create the destination with `seawall copy --init-dest`")


def prepare_destination(source: Vault, store: ObjectStore, passphrase: str, *, init: bool = False,
                        source_url: str | None = None, **options) -> Vault:
    """Open (or with `init`, create) the destination vault and check it fits the source.

    Raises:
        VaultNotInitialised: No vault at the destination and `init` is False (the hint says how).
        AuthError: Wrong destination passphrase.
        ConfigError: Same vault, another master key, or other chunker parameters.
    """
    if same_location(source.url, store.display_url):
        raise ConfigError(f"source and destination are the same vault ({source.url})",
                          hint="copy to a vault in another location (another bucket, region or folder)")
    try:
        Vault.read_config(store)
    except VaultNotInitialised:
        if not init:
            raise VaultNotInitialised(
                f"no seawall vault at the copy destination {store.display_url}",
                hint=f"create it from the source: seawall copy --from {source_url or source.url} "
                     f"--to {store.display_url} --init-dest") from None
        dest = init_destination(source, store, passphrase, **options)
    else:
        dest = Vault.open(store, passphrase)
    check_pair(source, dest)
    return dest


# ---- results ------------------------------------------------------------------------------------------
@dataclass
class BackupCopy:
    """The outcome of copying one backup."""

    dataset: str
    backup_id: str
    status: str  # copied | present | failed
    chunks_copied: int = 0
    bytes_copied: int = 0
    error: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class WalCopy:
    """The outcome of copying the WAL archive."""

    copied: int = 0
    present: int = 0
    bytes_copied: int = 0
    problems: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list, repr=False)  # the keys copied

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "keys"}


# ---- WAL ----------------------------------------------------------------------------------------------
def _wal_ref(key: str) -> ObjectRef:
    return ObjectRef.sealed(key, ObjType.RECORD if key == CLUSTER_KEY else ObjType.WAL)


def check_binding(source: Vault, dest: Vault) -> None:
    """Refuse a destination whose WAL archive belongs to another cluster than the source's."""
    import json

    try:
        theirs = json.loads(dest.get_record(CLUSTER_KEY)).get("system_identifier")
        mine = json.loads(source.get_record(CLUSTER_KEY)).get("system_identifier")
    except ObjectNotFound:
        return
    if mine != theirs:
        raise ConfigError(f"destination {dest.url} archives WAL of cluster {theirs}, the source of cluster {mine}",
                          hint="copy into a destination dedicated to this source")


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


# ---- the report ---------------------------------------------------------------------------------------
@dataclass
class CopyReport:
    """Everything one copy run did: per backup, the WAL, bytes, throughput and replication lag."""

    source: str
    dest: str
    backups: list[BackupCopy]
    wal: WalCopy | None
    stats: dict
    objects_skipped: int
    lag: list[dict]
    problems: list[str] = field(default_factory=list)
    locks: dict | None = None

    @property
    def failures(self) -> list[str]:
        out = [b.error or "" for b in self.backups if b.status == "failed"]
        return out + (self.wal.problems if self.wal else []) + self.problems

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {"source": self.source, "dest": self.dest, "ok": self.ok,
                "backups": [b.to_dict() for b in self.backups], "wal": self.wal.to_dict() if self.wal else None,
                **self.stats, "objects_skipped": self.objects_skipped, "lag": self.lag,
                "problems": self.failures, "locks": self.locks}


class CopyFailed(IntegrityError):
    """Raised after a copy in which some backups (or WAL objects) failed; carries the report."""

    def __init__(self, report: CopyReport):
        self.report = report
        failures = report.failures
        more = f" (+{len(failures) - 1} more)" if len(failures) > 1 else ""
        super().__init__(f"copy to {report.dest} incomplete: {failures[0]}{more}",
                         hint="the other backups were copied; fix the source and rerun (only the rest moves)")


def raise_for_failures(report: CopyReport) -> CopyReport:
    """Return the report if everything copied, else raise CopyFailed."""
    if not report.ok:
        raise CopyFailed(report)
    return report


def skipped_objects(plan: CopyPlan) -> int:
    """Objects the selection needs that the destination already held (not transferred)."""
    chunks = {c for item in plan.items for c in item.chunks if c in plan.dest_chunks}
    return len(chunks) + len(plan.present) + len(plan.wal_present & set(plan.wal_sizes))


def merge_stats(parts: Iterable[dict]) -> dict:
    """Sum the `TransferStats.to_dict()` of several steps; throughput over their summed time."""
    total = TransferStats()
    for part in parts:
        total.add(**{k: v for k, v in part.items() if k != "throughput_bps"})
    return total.to_dict()


def build_report(plan: CopyPlan, backups: list[BackupCopy], wal: WalCopy | None, stats: Iterable[dict],
                 locks: dict | None = None) -> CopyReport:
    """Assemble the report of a run from the plan and the results (and stats) of its steps."""
    from seawall.copy_plan import replication_lag

    done = {b.backup_id for b in backups if b.status == "copied"}
    copied = [i for i in plan.items if i.backup_id in done]
    return CopyReport(plan.source, plan.dest, backups, wal, merge_stats(stats), skipped_objects(plan),
                      replication_lag(plan.newest, copied), list(plan.problems), locks)


def copy_vault(source: Vault, dest: Vault, *, datasets: list[str] | None = None, backups="all",
               include_wal: bool = True, settings: CopySettings | None = None,
               progress: Callable[[int], None] | None = None) -> CopyReport:
    """Plan and copy in one call (the flow runs the same steps as separate tasks).

    Example:
        >>> report = copy_vault(open_vault(SRC, pw), open_vault(DST, pw))  # doctest: +SKIP
        >>> report.ok, report.stats["bytes_copied"]  # doctest: +SKIP
    """
    from seawall.copy_plan import plan_copy

    settings = settings or CopySettings()
    stats = TransferStats()
    plan = plan_copy(source, dest, datasets=datasets, backups=backups, include_wal=include_wal)
    wal = copy_wal(source, dest, plan, settings, stats, progress) if include_wal else None
    results = copy_backups(source, dest, plan, settings, wal, stats, progress)
    return build_report(plan, results, wal, [stats.to_dict()])
