"""Vault verification (restic/borg `check`): manifests open, every referenced chunk is present,
and with `read_data` every chunk decrypts, authenticates and hashes to its id.

Each backup is judged on its own: a corrupt chunk fails exactly the backups that reference it, and
the report names the backup and the object. Unique chunks are read once, in parallel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from seawall.errors import IntegrityError, SeawallError
from seawall.manifest import BackupStatus, Manifest
from seawall.sources.tree import iter_entries
from seawall.streams import ChunkReader
from seawall.vault import Vault, chunk_key


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

    @property
    def ok(self) -> bool:
        return all(b.ok for b in self.backups)

    def to_dict(self) -> dict:
        return {"vault": self.vault, "read_data": self.read_data, "ok": self.ok,
                "chunks_read": self.chunks_read, "bytes_read": self.bytes_read,
                "backups": [b.to_dict() for b in self.backups]}


def _split_key(key: str) -> tuple[str, str]:
    _, dataset, backup_id = key.split("/", 2)
    return dataset, backup_id


class _ChunkChecker:
    """Checks each unique chunk once; remembers the verdict for every backup that shares it."""

    def __init__(self, vault: Vault, read_data: bool, workers: int):
        self.vault, self.read_data = vault, read_data
        self.present = {i.key.rsplit("/", 1)[1] for i in vault.store.list("chunks/")} if not read_data else None
        self.verdicts: dict[str, str | None] = {}
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="seawall-verify")
        self.chunks_read = self.bytes_read = 0

    def _read(self, chunk_id: str) -> str | None:
        try:
            data = self.vault.get_chunk(chunk_id)
        except SeawallError as exc:
            return exc.message
        self.chunks_read += 1
        self.bytes_read += len(data)
        return None

    def check(self, chunk_ids: Iterable[str], progress: Callable[[int], None] | None) -> list[str]:
        todo = [c for c in dict.fromkeys(chunk_ids) if c not in self.verdicts]
        if self.read_data:
            for chunk_id, verdict in zip(todo, self.pool.map(self._read, todo), strict=True):
                self.verdicts[chunk_id] = verdict
                if progress:
                    progress(1)
        else:
            for chunk_id in todo:
                missing = chunk_id not in self.present
                self.verdicts[chunk_id] = f"chunk {chunk_key(chunk_id)} is missing" if missing else None
        return [v for c in dict.fromkeys(chunk_ids) if (v := self.verdicts[c])]


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
    checker = _ChunkChecker(vault, read_data, workers)
    with ChunkReader(vault) as reader:
        for key, item in entries:
            ds, bid = _split_key(key)
            if isinstance(item, IntegrityError):
                report.backups.append(BackupCheck(key, ds, bid, "UNREADABLE", [f"manifest {key}: {item.message}"]))
                continue
            check = BackupCheck(key, ds, bid, str(item.status))
            report.backups.append(check)
            if item.status != BackupStatus.DONE:
                check.checked = False
                continue
            try:
                ids = referenced_chunks(vault, item, reader)
            except SeawallError as exc:
                check.problems.append(f"index of backup {bid}: {exc.message}")
                continue
            check.chunks = len(set(ids))
            check.problems.extend(checker.check(ids, progress))
    checker.pool.shutdown()
    report.chunks_read, report.bytes_read = checker.chunks_read, checker.bytes_read
    return report


class VaultCheckFailed(IntegrityError):
    """Raised after a verification whose report has failed backups; carries the report."""

    def __init__(self, report: VerifyReport):
        self.report = report
        failed = [b for b in report.backups if not b.ok]
        first = failed[0]
        more = f" (+{len(failed) - 1} more backups)" if len(failed) > 1 else ""
        super().__init__(f"backup {first.dataset}/{first.backup_id} failed verification: {first.problems[0]}{more}",
                         hint="see `seawall verify --json` for every problem")


def raise_for_problems(report: VerifyReport) -> VerifyReport:
    """Return the report if every backup verified, else raise VaultCheckFailed."""
    if not report.ok:
        raise VaultCheckFailed(report)
    return report
