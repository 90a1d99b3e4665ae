"""Vault verification (restic/borg `check`): manifests open, every referenced chunk is indexed
and its pack listed, and with `read_data` every pack is read whole: its header authenticates, every
blob decrypts and hashes to its id, and the index agrees with the header (`seawall.verify_packs`).

Each backup is judged on its own: a corrupt chunk or pack fails exactly the backups that reference
it, and the report names the backup, the pack and the other backups that use it. Problems of the
vault as a whole (an index file that does not open, an index entry the pack does not hold, a pack
that fails but no backup uses) are `VerifyReport.problems`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from seawall.errors import IntegrityError, SeawallError
from seawall.manifest import BackupStatus, Manifest
from seawall.sources.tree import iter_entries
from seawall.streams import ChunkReader
from seawall.vault import Vault
from seawall.verify_packs import PackChecker


@dataclass
class BackupCheck:
    """The verdict on one backup."""

    key: str
    dataset: str
    backup_id: str
    status: str
    problems: list[str] = field(default_factory=list)
    chunks: int = 0
    checked: bool = True

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "backup_id": self.backup_id, "status": self.status,
                "ok": self.ok, "checked": self.checked, "chunks": self.chunks, "problems": self.problems}


@dataclass
class VerifyReport:
    vault: str
    read_data: bool
    backups: list[BackupCheck] = field(default_factory=list)
    chunks_read: int = 0
    bytes_read: int = 0
    packs_read: int = 0
    problems: list[str] = field(default_factory=list)  # the vault's own: index, unused packs

    @property
    def ok(self) -> bool:
        return all(b.ok for b in self.backups) and not self.problems

    def to_dict(self) -> dict:
        return {"vault": self.vault, "read_data": self.read_data, "ok": self.ok,
                "chunks_read": self.chunks_read, "bytes_read": self.bytes_read, "packs_read": self.packs_read,
                "problems": self.problems, "backups": [b.to_dict() for b in self.backups]}


def _split_key(key: str) -> tuple[str, str]:
    _, dataset, backup_id = key.split("/", 2)
    return dataset, backup_id


def referenced_chunks(vault: Vault, manifest: Manifest, reader: ChunkReader) -> list[str]:
    """Every chunk id a backup needs: its streams, and for tree streams every file's chunks."""
    ids: list[str] = []
    for stream in manifest.streams:
        ids.extend(c[0] for c in stream.chunks)
        if stream.kind == "tree":
            for entry in iter_entries(reader.iter_stream(stream)):
                ids.extend(c[0] for c in entry.chunks)
    return ids


def verify_vault(vault: Vault, *, backup_id: str | None = None, dataset: str | None = None,
                 read_data: bool = False, workers: int = 4,
                 progress: Callable[[int], None] | None = None) -> VerifyReport:
    """Verify every DONE backup (or one) in the vault; never raises for a bad backup."""
    report = VerifyReport(vault=vault.url, read_data=read_data)
    if backup_id:
        keys = [vault.find_backup(backup_id, dataset).key]
        entries: list[tuple[str, Manifest | IntegrityError]] = [(keys[0], vault.read_manifest_key(keys[0]))]
    else:
        entries = list(vault.iter_manifests(dataset))
    needs: dict[str, list[str]] = {}  # backup key -> unique chunk ids
    checks: dict[str, BackupCheck] = {}
    with ChunkReader(vault) as reader:
        for key, item in entries:
            ds, bid = _split_key(key)
            if isinstance(item, IntegrityError):
                report.backups.append(BackupCheck(key, ds, bid, "UNREADABLE", [f"manifest {key}: {item.message}"]))
                continue
            check = checks[key] = BackupCheck(key, ds, bid, str(item.status))
            report.backups.append(check)
            if item.status != BackupStatus.DONE:
                check.checked = False
                continue
            try:
                needs[key] = list(dict.fromkeys(referenced_chunks(vault, item, reader)))
            except SeawallError as exc:
                check.problems.append(f"index of backup {bid}: {exc.message}")
                continue
            check.chunks = len(needs[key])
    checker = PackChecker(vault, needs, workers=workers, every_pack=read_data and not backup_id)
    verdicts = checker.run(read_data, progress)
    for key, ids in needs.items():
        checks[key].problems.extend(dict.fromkeys(v for c in ids if (v := verdicts.get(c))))
    report.problems = checker.problems
    report.chunks_read, report.bytes_read = checker.chunks_read, checker.bytes_read
    report.packs_read = checker.packs_read
    return report


class VaultCheckFailed(IntegrityError):
    """Raised after a verification whose report has failed backups; carries the report."""

    def __init__(self, report: VerifyReport):
        self.report = report
        failed = [b for b in report.backups if not b.ok]
        if not failed:
            more = f" (+{len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
            super().__init__(f"vault {report.vault} failed verification: {report.problems[0]}{more}",
                             hint="run `seawall repair index` to rebuild the index from the packs")
            return
        first = failed[0]
        more = f" (+{len(failed) - 1} more backups)" if len(failed) > 1 else ""
        super().__init__(f"backup {first.dataset}/{first.backup_id} failed verification: {first.problems[0]}{more}",
                         hint="see `seawall verify --json` for every problem")


def raise_for_problems(report: VerifyReport) -> VerifyReport:
    """Return the report if every backup verified, else raise VaultCheckFailed."""
    if not report.ok:
        raise VaultCheckFailed(report)
    return report
