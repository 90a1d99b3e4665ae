"""`seawall repair index`: rebuild the index from the pack headers (restic `repair index`).

Every pack's header is read (two ranged GETs: the trailer, then the sealed header) and
authenticated; the entries of every pack that opens become the new index, written before any old
index file is deleted (a crash in between leaves both: duplicates are harmless). A pack whose
header does not open is reported by name and left alone: its chunks stay unindexed, so `verify`
names the backups that need them. Run under the vault's exclusive lease (no writer meanwhile).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from seawall.errors import IntegrityError, ObjectNotFound
from seawall.vault.index import INDEX_PREFIX, split_for_files, write_index
from seawall.vault.packs import PACK_PREFIX, BlobEntry, is_pack_key, read_header


@dataclass
class RepairReport:
    vault: str
    packs: int = 0
    chunks: int = 0
    index_files_written: int = 0
    index_files_deleted: int = 0
    entries_before: int = 0
    bad_packs: list[str] = field(default_factory=list)  # "key: why"

    @property
    def ok(self) -> bool:
        return not self.bad_packs

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def rebuild_index(vault, *, workers: int = 8) -> RepairReport:
    """Read every pack header, write the index they describe, delete the old index files."""
    store, keyring = vault.store, vault.keyring
    report = RepairReport(vault=vault.url)
    old_files = sorted(i.key for i in store.list(INDEX_PREFIX) if i.key.count("/") == 1)
    report.entries_before = len(vault.known_chunks(refresh=True))
    packs = {i.key: i.size for i in store.list(PACK_PREFIX) if is_pack_key(i.key)}

    def header(item: tuple[str, int]) -> tuple[str, list[BlobEntry] | str]:
        try:
            return item[0], read_header(store, keyring, item[0], item[1])
        except (IntegrityError, ObjectNotFound) as exc:
            return item[0], exc.message

    found: dict[str, list[BlobEntry]] = {}
    with ThreadPoolExecutor(workers, thread_name_prefix="seawall-repair") as pool:
        for key, result in pool.map(header, sorted(packs.items())):
            if isinstance(result, str):
                report.bad_packs.append(f"{key}: {result}")
            elif result:
                found[key] = result
    report.packs, report.chunks = len(found), sum(len(v) for v in found.values())
    written = set(write_index(store, keyring, found)) if found else set()
    report.index_files_written = len(list(split_for_files(found)))
    stale = [k for k in old_files if k not in written]
    store.delete_many(stale)
    report.index_files_deleted = len(stale)
    vault.known_chunks(refresh=True)
    return report
