"""Verifying a vault: what each backup references, and the run that judges every backup on its own."""

from __future__ import annotations

from collections.abc import Callable

from seawall.errors import IntegrityError, SeawallError
from seawall.manifest import BackupStatus, Manifest
from seawall.sources.tree import iter_entries
from seawall.streams import ChunkReader
from seawall.vault import Vault
from seawall.verify.packs import PackChecker
from seawall.verify.report import BackupCheck, VerifyReport


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
                ids.extend(entry.stored_ids())
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

