"""Listing and marking for garbage collection, and the checks that abort a run before any deletion.

Every object is listed once. A listing that fails, returns nothing, or looks truncated (the vault's
key wrappers, every manifest, a kept backup's manifest, a referenced chunk's pack or index entry is
missing from it) aborts the run with nothing deleted: restic once pruned live data after a bad
listing. An index file that does not open aborts too (`seawall repair index`), and so does a
manifest that does not open: GC would not know which chunks it needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from seawall.errors import IntegrityError, ObjectNotFound, PermanentError, RetryableError, SeawallError
from seawall.manifest import Manifest, is_backup_id
from seawall.postgres import walnames
from seawall.stores import ObjectInfo, ObjectStore
from seawall.streams import ChunkReader
from seawall.vault import Vault
from seawall.vault.index import INDEX_PREFIX
from seawall.vault.packs import PACK_PREFIX, is_pack_key
from seawall.verify import referenced_chunks

_NOTHING_DELETED = "garbage collection aborted, nothing deleted"


@dataclass
class Inventory:
    """One listing of the whole vault, sorted into what GC cares about."""

    chunks: dict[str, int] = field(default_factory=dict)  # loose (format v1) chunks
    packs: dict[str, int] = field(default_factory=dict)
    index_files: list[str] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)
    wal: list[ObjectInfo] = field(default_factory=list)
    key_wrappers: int = 0
    objects: int = 0  # chunks, manifests and WAL files listed


def _aborted(exc: SeawallError, what: str) -> SeawallError:
    """Re-state a listing/reading error as "GC aborted", keeping its family and exit code."""
    cls = RetryableError if isinstance(exc, RetryableError) else PermanentError
    return cls(f"{_NOTHING_DELETED}: {what}: {exc.message}", hint=exc.hint, exit_code=exc.exit_code)


def take_inventory(store: ObjectStore) -> Inventory:
    """List chunks, manifests and WAL once; any listing error aborts GC before anything is deleted."""
    inv = Inventory()
    try:
        inv.key_wrappers = sum(1 for _ in store.list("keys/"))
        # A tight loop: this listing is most of GC's time on a vault of many small chunks.
        inv.chunks = {i.key[i.key.rfind("/") + 1:]: i.size for i in store.list("chunks/") if i.key.count("/") == 2}
        inv.packs = {i.key: i.size for i in store.list(PACK_PREFIX) if is_pack_key(i.key)}
        inv.index_files = sorted(i.key for i in store.list(INDEX_PREFIX) if i.key.count("/") == 1)
        inv.manifests = sorted(i.key for i in store.list("manifests/") if _is_manifest_key(i.key))
        inv.wal = [i for i in store.list("wal/") if _is_wal_key(i.key)]
    except SeawallError as exc:
        raise _aborted(exc, f"listing {store.display_url} failed") from exc
    inv.objects = len(inv.chunks) + len(inv.packs) + len(inv.index_files) + len(inv.manifests) + len(inv.wal)
    return inv


def _is_manifest_key(key: str) -> bool:
    parts = key.split("/")
    return len(parts) == 3 and is_backup_id(parts[2])


def _is_wal_key(key: str) -> bool:
    parts = key.split("/")
    return len(parts) == 3 and walnames.is_wal_file_name(parts[2])


def read_manifests(vault: Vault, keys: Iterable[str]) -> list[Manifest]:
    """Open every manifest GC must honour; one that does not open aborts the run."""
    out = []
    for key in keys:
        try:
            out.append(vault.read_manifest_key(key))
        except ObjectNotFound as exc:
            raise _aborted(exc, f"manifest {key} vanished while collecting (another prune running?)") from exc
        except IntegrityError as exc:
            raise IntegrityError(f"{_NOTHING_DELETED}: manifest {key} does not open ({exc.message})",
                                 hint="GC cannot tell which chunks it needs: run `seawall verify`") from exc
    return out


def mark(vault: Vault, manifests: Iterable[Manifest]) -> set[str]:
    """Every chunk id the manifests reference, file-tree index entries included."""
    referenced: set[str] = set()
    with ChunkReader(vault) as reader:
        for manifest in manifests:
            try:
                referenced.update(referenced_chunks(vault, manifest, reader))
            except SeawallError as exc:
                raise IntegrityError(
                    f"{_NOTHING_DELETED}: the index of backup {manifest.dataset}/{manifest.backup_id} "
                    f"does not read ({exc.message})", hint="run `seawall verify` to see what is damaged") from exc
    return referenced


def check_listing(inv: Inventory, store: ObjectStore, referenced: set[str], expect: Iterable[str] = (),
                  vault: Vault | None = None) -> None:
    """Refuse to sweep after a listing that looks empty or truncated, or an index that is not whole.

    Raises:
        IntegrityError: the key wrappers, every manifest, an expected manifest, a referenced chunk
            (its index entry or its pack) is not listed, or an index file does not open.
    """
    where = store.display_url
    if not inv.key_wrappers:
        raise IntegrityError(f"{_NOTHING_DELETED}: the listing of {where} looks truncated: it does not even "
                             "show the key wrappers the vault was opened with", hint="retry later")
    unlisted = sorted(set(expect) - set(inv.manifests))
    if unlisted:
        raise IntegrityError(f"{_NOTHING_DELETED}: listing incomplete: {len(unlisted)} kept manifest(s) "
                             f"not listed, first {unlisted[0]}", hint="retry later")
    stored = len(inv.chunks) + len(inv.packs)
    if stored and not inv.manifests:
        raise IntegrityError(f"{_NOTHING_DELETED}: {where} lists {stored} packs and chunks but no manifest: "
                             "refusing to delete every chunk", hint="if the listing is right, the vault holds "
                             "no backup: delete the vault itself instead")
    if referenced and not stored:
        raise IntegrityError(f"{_NOTHING_DELETED}: listing data/ and chunks/ of {where} returned nothing while "
                             f"backups reference {len(referenced)} chunks", hint="retry later")
    index = vault.chunks.index if vault is not None else None
    if index is not None and index.problems:
        raise IntegrityError(f"{_NOTHING_DELETED}: {index.problems[0]}",
                             hint="run `seawall repair index`, then collect garbage again")
    missing = sorted(c for c in referenced if not _located(c, inv, index))
    if missing:
        raise IntegrityError(
            f"{_NOTHING_DELETED}: listing incomplete: {len(missing)} referenced chunk(s) are not in the "
            f"listing or index of {where}, first {missing[0]}",
            hint="retry; if it persists, run `seawall repair index` and `seawall verify`, and remove the "
                 "damaged backups first")


def _located(chunk_id: str, inv: Inventory, index) -> bool:
    if chunk_id in inv.chunks:
        return True
    loc = index.get(chunk_id) if index is not None else None
    return loc is not None and loc[0] in inv.packs
