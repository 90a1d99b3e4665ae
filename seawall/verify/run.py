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


def referenced_chunks(vault: Vault, manifest: Manifest, reader: ChunkReader,
                      patches: dict[str, list[str]] | None = None) -> list[str]:
    """Every chunk id a backup needs: its streams, and for tree streams every file's chunks (a
    page-patched block's base and patch). `patches`, if given, receives the patched blocks."""
    ids: list[str] = []
    for stream in manifest.streams:
        ids.extend(c[0] for c in stream.chunks)
        if stream.kind == "tree":
            for entry in iter_entries(reader.iter_stream(stream)):
                ids.extend(entry.stored_ids())
                if patches is not None and entry.patches:
                    patches.update(entry.patches)
    return ids


def _check_patched(vault: Vault, patched: dict[str, dict[str, list[str]]], verdicts: dict[str, str | None],
                   checks: dict[str, BackupCheck]) -> None:
    """With --read-data: every page-patched block composed from its base and patch and checked
    against its own id. Each chunk alone was checked already; this checks that they make the block."""
    from seawall.postgres.pagepatch import BLOCK

    problems: dict[tuple[str, ...], str] = {}  # (block, base, patch, bitmap) -> "" (fine) or the problem
    with ChunkReader(vault, workers=1) as reader:
        for key, blocks in patched.items():
            for block_id, record in blocks.items():
                if any(verdicts.get(c) for c in record[:2]):
                    continue  # a missing or damaged base or patch: reported already
                once = (block_id, *record)  # backups share most patches: each is composed once
                if once not in problems:
                    problems[once] = _compose_problem(reader, block_id, record, BLOCK)
                if problems[once]:
                    checks[key].problems.append(problems[once])


def _compose_problem(reader: ChunkReader, block_id: str, record: list[str], size: int) -> str:
    reader.add_patches({block_id: record})
    try:
        for _ in reader.iter_chunks([(block_id, size)]):
            pass
    except IntegrityError as exc:
        return exc.message
    return ""


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
    patched: dict[str, dict[str, list[str]]] = {}  # backup key -> its page-patched blocks
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
                patched[key] = {}
                needs[key] = list(dict.fromkeys(referenced_chunks(vault, item, reader, patched[key])))
            except SeawallError as exc:
                check.problems.append(f"index of backup {bid}: {exc.message}")
                continue
            check.chunks = len(needs[key])
    checker = PackChecker(vault, needs, workers=workers, every_pack=read_data and not backup_id)
    verdicts = checker.run(read_data, progress)
    for key, ids in needs.items():
        checks[key].problems.extend(dict.fromkeys(v for c in ids if (v := verdicts.get(c))))
    if read_data:
        _check_patched(vault, patched, verdicts, checks)
    report.problems = checker.problems
    report.chunks_read, report.bytes_read = checker.chunks_read, checker.bytes_read
    report.packs_read = checker.packs_read
    return report

