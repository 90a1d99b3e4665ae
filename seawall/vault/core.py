"""The vault: one storage location holding chunks, manifests and the keyring.

Layout inside the object store::

    config                      plain JSON: format, version, vault id, chunker parameters
    keys/<wrapper-id>           the master key wrapped by a passphrase (scrypt) or AWS KMS
    data/<ab>/<pack-id>         packs of sealed chunks (seawall.vault.packs)
    index/<index-id>            sealed index files: chunk id -> (pack, offset, length)
    chunks/<ab>/<chunk-id>      loose sealed chunks of format v1 vaults (read, never written now)
    manifests/<dataset>/<id>    sealed manifests, one per backup
    wal/<cluster>/...           WAL archive (PostgreSQL)

Opening a vault reads only; a wrong passphrase writes nothing anywhere.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from seawall.crypto import Keyring, ObjType, ScryptParams, wrap_with_passphrase
from seawall.errors import (
    AuthError,
    BackupNotFound,
    IntegrityError,
    ObjectNotFound,
    SeawallError,
    VaultExists,
    VaultNotInitialised,
)
from seawall.stores import ObjectStore
from seawall.vault.chunks import ChunkStore
from seawall.vault.config import CONFIG_KEY, WRAPPER_KINDS, ChunkerParams, VaultConfig

if TYPE_CHECKING:  # seawall.manifest pulls in pydantic (~100 ms): kept off the wal-push path
    from seawall.manifest import BackupStatus, Manifest

@dataclass(frozen=True)
class CorruptManifest:
    """A manifest object that failed to open: where it is and why."""

    key: str
    dataset: str
    backup_id: str
    reason: str

    @classmethod
    def of(cls, key: str, exc: IntegrityError) -> CorruptManifest:
        _, dataset, backup_id = key.split("/", 2)
        return cls(key, dataset, backup_id, exc.message)


class Vault:
    """An opened (unlocked) vault."""

    def __init__(self, store: ObjectStore, config: VaultConfig, keyring: Keyring):
        self.store = store
        self.config = config
        self.keyring = keyring
        self._chunks: ChunkStore | None = None
        self._known_lock = threading.Lock()
        self.unlocked_by: str | None = None  # the key wrapper that opened the vault (None: created here)

    def __repr__(self) -> str:
        return f"Vault({self.store.display_url!r}, id={self.config.vault_id})"

    @property
    def url(self) -> str:
        return self.store.display_url

    # ---- lifecycle ------------------------------------------------------------------------------
    @classmethod
    def init(
        cls,
        store: ObjectStore,
        passphrase: str,
        *,
        chunker: ChunkerParams | None = None,
        scrypt: ScryptParams | None = None,
        keyring: Keyring | None = None,
    ) -> Vault:
        """Create a new vault; refuses a location that already holds one."""
        if store.exists(CONFIG_KEY):
            raise VaultExists(
                f"{store.display_url} already holds a seawall vault", hint="use it, or pick an empty location"
            )
        config = VaultConfig(
            vault_id=secrets.token_hex(16),
            created=datetime.now(UTC).isoformat(),
            chunker=chunker or ChunkerParams(),
        )
        keyring = keyring or Keyring.generate()
        vault = cls(store, config, keyring)
        vault.add_passphrase(passphrase, scrypt=scrypt)
        # The config goes last: a crash before this leaves no half-initialised vault behind.
        if not store.put_if_absent(CONFIG_KEY, config.to_json()):
            raise VaultExists(f"{store.display_url} was initialised concurrently by another process")
        return vault

    @classmethod
    def read_config(cls, store: ObjectStore) -> VaultConfig:
        try:
            data = store.get(CONFIG_KEY)
        except ObjectNotFound:
            raise VaultNotInitialised(
                f"no seawall vault at {store.display_url}", hint=f"run `seawall init {store.display_url}` first"
            ) from None
        return VaultConfig.from_json(data, store.display_url)

    @classmethod
    def open(cls, store: ObjectStore, passphrase: str | None) -> Vault:
        """Unlock an existing vault: passphrase wrappers first, then KMS wrappers (`seawall.wrappers`)."""
        from seawall.wrappers import unlock

        config = cls.read_config(store)
        keyring, wrapper_id = unlock(list(cls._key_records(store)), passphrase, config.vault_id, store.display_url)
        vault = cls(store, config, keyring)
        vault.unlocked_by = wrapper_id
        return vault

    @staticmethod
    def _key_records(store: ObjectStore) -> Iterator[dict[str, Any]]:
        """Well-formed wrapper records only: junk under keys/ is neither tried nor counted."""
        for info in store.list("keys/"):
            try:
                record = json.loads(store.get(info.key))
            except (ValueError, ObjectNotFound):
                continue
            if isinstance(record, dict) and record.get("kind") in WRAPPER_KINDS and isinstance(record.get("id"), str):
                yield record

    def add_passphrase(self, passphrase: str, *, scrypt: ScryptParams | None = None) -> str:
        """Add a passphrase wrapper for the master key; returns the wrapper id."""
        wrapper_id = secrets.token_hex(8)
        record = wrap_with_passphrase(self.keyring, passphrase, self.config.vault_id, wrapper_id, scrypt)
        self.store.put(f"keys/{wrapper_id}", json.dumps(record, indent=2).encode())
        return wrapper_id

    def key_records(self) -> list[dict[str, Any]]:
        """Every well-formed key wrapper record (they hold wrapped keys: never print them whole)."""
        return list(self._key_records(self.store))

    def key_wrappers(self) -> list[dict[str, Any]]:
        from seawall.wrappers import public

        return [public(r) for r in self._key_records(self.store)]

    def remove_key_wrapper(self, wrapper_id: str) -> None:
        if len(self.key_wrappers()) <= 1:
            raise AuthError("refusing to remove the last key wrapper: the vault would become unreadable")
        self.store.delete(f"keys/{wrapper_id}")

    # ---- chunks ---------------------------------------------------------------------------------
    @property
    def chunks(self) -> ChunkStore:
        """Where the chunks are: the index and packs (v2), loose objects (v1); see seawall.vault.chunks."""
        if self._chunks is None:
            self._chunks = ChunkStore(self.store, self.keyring, self.config.vault_id, self.config.chunker.max_size)
        return self._chunks

    def known_chunks(self, *, refresh: bool = False) -> set[str]:
        """Ids of chunks stored in the vault: read once (index files, through the local cache, and
        loose v1 chunks), kept current by our own writes.

        Backups call this with `refresh=True` so a long-lived Vault never trusts an index older
        than the backup (chunks removed meanwhile would otherwise be referenced but missing).
        """
        return self.chunks.known(refresh)

    def forget_chunks(self, chunk_ids: list[str] | set[str]) -> None:
        """Drop deleted chunks from the known set, so nothing deduplicates against them."""
        self.chunks.forget(chunk_ids)

    def has_chunk(self, chunk_id: str) -> bool:
        return chunk_id in self.known_chunks()

    def put_chunk(self, data: bytes | memoryview, chunk_id: str | None = None, *, level: int = 1,
                  packed: bytes | memoryview | None = None) -> tuple[str, int]:
        """Store a chunk unless present; returns (id, stored bytes written: 0 if deduplicated).

        The chunk goes into an open pack: durable (and indexed) at `commit_chunks()`. `level` is
        zstd's (0: stored uncompressed); the id does not depend on it. `packed`: the data's zstd
        frame at `level`, when the caller compressed it already (`seawall.crypto.compress_many`).
        """
        chunk_id = chunk_id or self.keyring.chunk_id(data)
        known = self.known_chunks()
        with self._known_lock:
            if chunk_id in known:
                return chunk_id, 0
            known.add(chunk_id)
        try:
            return chunk_id, self.chunks.put(chunk_id, data, level, packed)
        except BaseException:
            with self._known_lock:
                known.discard(chunk_id)
            raise

    def commit_chunks(self) -> None:
        """Make every chunk stored so far durable: packs uploaded, then their index written.
        Call before writing a manifest that needs them."""
        self.chunks.commit()

    def chunk_object(self, chunk_id: str) -> str | None:
        """The key of the object (pack or loose chunk) holding `chunk_id`, None if not stored."""
        return self.chunks.object_key(chunk_id)

    def get_chunk(self, chunk_id: str) -> bytes:
        """Fetch, authenticate and decrypt a chunk, and check its plaintext against its id."""
        return self.chunks.get(chunk_id)

    def get_chunks(self, chunk_ids: list[str]) -> list[bytes]:
        """`get_chunk` for several chunks, neighbours in a pack read with one ranged GET."""
        sealed = self.chunks.sealed_many(chunk_ids)
        return [self.chunks.open(c, *sealed[c]) for c in chunk_ids]

    # ---- sealed records -------------------------------------------------------------------------
    def put_record(self, key: str, payload: bytes, obj_type: int = ObjType.RECORD) -> None:
        self.store.put(key, self.keyring.seal(obj_type, key, payload))

    def get_record(self, key: str, obj_type: int = ObjType.RECORD) -> bytes:
        return self.keyring.open(obj_type, key, self.store.get(key))

    # ---- manifests ------------------------------------------------------------------------------
    def write_manifest(self, manifest: Manifest) -> None:
        """Write a manifest, after making every chunk this process stored durable and indexed
        (a manifest never references a chunk in a pack that is not yet written and indexed)."""
        try:
            self.commit_chunks()
        except SeawallError:
            if manifest.status != "FAILED":
                raise
            manifest.streams = []  # some of its chunks may not be stored: a FAILED backup references none
        self.put_record(manifest.key, manifest.model_dump_json().encode(), ObjType.MANIFEST)

    def read_manifest_key(self, key: str) -> Manifest:
        from pydantic import ValidationError

        from seawall.manifest import Manifest

        payload = self.get_record(key, ObjType.MANIFEST)
        try:
            manifest = Manifest.model_validate_json(payload)
        except ValidationError as exc:
            raise IntegrityError(f"manifest {key} does not match the schema: {exc.errors()[0]['msg']}") from None
        if manifest.key != key:
            raise IntegrityError(f"manifest {key} claims to be {manifest.key}")
        return manifest

    def manifest_keys(self, dataset: str | None = None) -> list[str]:
        from seawall.manifest import is_backup_id

        prefix = f"manifests/{dataset}/" if dataset else "manifests/"
        keys = [i.key for i in self.store.list(prefix) if i.key.count("/") == 2]
        return sorted(k for k in keys if is_backup_id(k.rsplit("/", 1)[1]))

    def iter_manifests(self, dataset: str | None = None) -> Iterator[tuple[str, Manifest | IntegrityError]]:
        """Every manifest (or the integrity error that stopped it from opening), oldest first."""
        for key in self.manifest_keys(dataset):
            try:
                yield key, self.read_manifest_key(key)
            except IntegrityError as exc:
                yield key, exc
            except ObjectNotFound:  # deleted while listing
                continue

    def list_backups(self, dataset: str | None = None, *, status: BackupStatus | None = None) -> list[Manifest]:
        """Manifests that opened, oldest first (see `catalog` for the ones that did not)."""
        return self.catalog(dataset, status=status)[0]

    def catalog(self, dataset: str | None = None, *, status: BackupStatus | None = None
                ) -> tuple[list[Manifest], list[CorruptManifest]]:
        """(manifests that opened, oldest first; manifests that did not, with the reason).

        Listings show the second kind as CORRUPT rows: a damaged or forged manifest must never
        make its backup silently disappear.
        """
        good: list[Manifest] = []
        bad: list[CorruptManifest] = []
        for key, item in self.iter_manifests(dataset):
            if isinstance(item, IntegrityError):
                bad.append(CorruptManifest.of(key, item))
            elif status is None or item.status == status:
                good.append(item)
        return sorted(good, key=lambda m: m.started_at), bad

    def latest_backup(self, dataset: str, *, kind: str | None = None) -> Manifest | None:
        from seawall.manifest import BackupStatus

        done = [m for m in self.list_backups(dataset, status=BackupStatus.DONE) if kind is None or m.kind == kind]
        return done[-1] if done else None

    def find_backup(self, backup_id: str, dataset: str | None = None) -> Manifest:
        """The manifest of `backup_id` (any dataset), or BackupNotFound."""
        from seawall.manifest import is_backup_id

        if not is_backup_id(backup_id):
            raise BackupNotFound(f"{backup_id!r} is not a backup id", hint="run `seawall list` to see them")
        keys = [k for k in self.manifest_keys(dataset) if k.endswith("/" + backup_id)]
        if not keys:
            raise BackupNotFound(f"no backup {backup_id} in {self.url}", hint="run `seawall list` to see them")
        return self.read_manifest_key(keys[0])

    def require_done(self, backup_id: str) -> Manifest:
        from seawall.manifest import BackupStatus

        manifest = self.find_backup(backup_id)
        if manifest.status != BackupStatus.DONE:
            raise BackupNotFound(
                f"backup {backup_id} is {manifest.status}, not complete", hint="pick a DONE backup from `seawall list`"
            )
        return manifest


def open_vault(url: str, passphrase: str | None, **store_options: Any) -> Vault:
    """Open the store behind `url` and unlock its vault."""
    from seawall.stores import open_store

    return Vault.open(open_store(url, **store_options), passphrase)


def init_vault(url: str, passphrase: str, **options: Any) -> Vault:
    from seawall.stores import open_store

    store_options = {k: v for k, v in options.items() if k not in ("chunker", "scrypt")}
    vault_options = {k: v for k, v in options.items() if k in ("chunker", "scrypt")}
    return Vault.init(open_store(url, create=True, **store_options), passphrase, **vault_options)

