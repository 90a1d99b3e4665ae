"""The vault on an in-memory store: init/open, key wrappers, chunks, manifests and the catalog."""

from __future__ import annotations

import json
import os

import pytest

from seawall.crypto import ObjType
from seawall.errors import (
    AuthError,
    BackupNotFound,
    ConfigError,
    IntegrityError,
    VaultExists,
    VaultNotInitialised,
)
from seawall.manifest import BackupStatus
from seawall.stores.memory import MemoryStore
from seawall.vault import CONFIG_KEY, ChunkerParams, Vault, chunk_key
from tests.unit.builders import (
    FAST_SCRYPT,
    PASSPHRASE,
    chunk_location,
    flip_chunk_byte,
    make_backup_id,
    make_manifest,
    memory_vault,
    store_snapshot,
)


@pytest.fixture
def vault() -> Vault:
    return memory_vault()


def keys_of(store: MemoryStore) -> list[str]:
    return sorted(store._objects)


# ---- init -------------------------------------------------------------------------------------


def test_init_writes_config_and_one_key_wrapper(vault: Vault) -> None:
    keys = keys_of(vault.store)
    assert keys[0] == CONFIG_KEY and len(keys) == 2 and keys[1].startswith("keys/")
    config = json.loads(vault.store.get(CONFIG_KEY))
    assert config["format"] == "seawall-vault" and config["version"] == 2
    assert config["vault_id"] == vault.config.vault_id and len(config["vault_id"]) == 32
    assert config["chunker"] == {"min_size": 256 << 10, "avg_size": 1 << 20, "max_size": 4 << 20}
    wrappers = vault.key_wrappers()
    assert [w["kind"] for w in wrappers] == ["passphrase"]
    assert keys[1] == f"keys/{wrappers[0]['id']}"


def test_init_records_custom_chunker() -> None:
    params = ChunkerParams(min_size=1 << 10, avg_size=4 << 10, max_size=16 << 10)
    vault = memory_vault(chunker=params)
    assert Vault.open(vault.store, PASSPHRASE).config.chunker == params


def test_vault_files_hold_no_secret_in_the_clear(vault: Vault) -> None:
    master = vault.keyring._master
    for data, _ in vault.store._objects.values():
        assert master not in data and master.hex().encode() not in data
        assert PASSPHRASE.encode() not in data


def test_init_twice_is_refused(vault: Vault) -> None:
    before = store_snapshot(vault.store)
    with pytest.raises(VaultExists):
        Vault.init(vault.store, "another passphrase", scrypt=FAST_SCRYPT)
    assert store_snapshot(vault.store) == before


def test_init_with_empty_passphrase_is_refused() -> None:
    store = MemoryStore()
    with pytest.raises(ConfigError):
        Vault.init(store, "", scrypt=FAST_SCRYPT)
    assert CONFIG_KEY not in store._objects


def test_repr_hides_secrets(vault: Vault) -> None:
    text = repr(vault)
    assert "memory://test" in text and vault.config.vault_id in text
    assert vault.keyring._master.hex() not in text and PASSPHRASE not in text


# ---- open ----------------------------------------------------------------------------------------


def test_open_with_the_right_passphrase(vault: Vault) -> None:
    again = Vault.open(vault.store, PASSPHRASE)
    assert again.config.vault_id == vault.config.vault_id
    assert again.keyring.chunk_id(b"x") == vault.keyring.chunk_id(b"x")


@pytest.mark.parametrize("wrong", ["guess-xyz-42", PASSPHRASE.upper(), PASSPHRASE + " ", ""])
def test_wrong_passphrase_is_refused_and_writes_nothing(vault: Vault, wrong: str) -> None:
    vault.put_chunk(b"some data")
    vault.write_manifest(make_manifest())
    before = store_snapshot(vault.store)
    with pytest.raises(AuthError) as info:
        Vault.open(vault.store, wrong)
    assert store_snapshot(vault.store) == before
    # An empty passphrase is no passphrase (a vault with a KMS wrapper would unlock without one).
    assert ("wrong passphrase" if wrong else "no passphrase given") in str(info.value)
    if wrong:
        assert wrong not in str(info.value)


def test_open_uninitialised_store() -> None:
    with pytest.raises(VaultNotInitialised, match="no seawall vault"):
        Vault.open(MemoryStore(), PASSPHRASE)


def test_open_after_a_crash_during_init(vault: Vault) -> None:
    """Init writes the config last: key wrappers alone do not make a vault."""
    vault.store.delete(CONFIG_KEY)
    with pytest.raises(VaultNotInitialised):
        Vault.open(vault.store, PASSPHRASE)


@pytest.mark.parametrize("config", [b"not json", b"{}", b'{"format": "borg"}', b'{"format": "seawall-vault"}'])
def test_unreadable_config_is_an_integrity_error(vault: Vault, config: bytes) -> None:
    vault.store.put(CONFIG_KEY, config)
    with pytest.raises(IntegrityError, match="config"):
        Vault.open(vault.store, PASSPHRASE)


def test_non_json_key_objects_are_skipped(vault: Vault) -> None:
    vault.store.put("keys/0000junk", b"\x00\x01 not json")
    assert Vault.open(vault.store, PASSPHRASE).config.vault_id == vault.config.vault_id


def test_non_object_json_key_record_does_not_crash_open(vault: Vault) -> None:
    vault.store.put("keys/0000junk", b"[1, 2]")
    with pytest.raises(AuthError):
        Vault.open(vault.store, "wrong passphrase")


# ---- key wrappers ------------------------------------------------------------------------------------


def test_second_passphrase_opens_the_same_vault(vault: Vault) -> None:
    chunk_id, _ = vault.put_chunk(b"written before the second wrapper existed")
    vault.commit_chunks()
    second = vault.add_passphrase("second passphrase", scrypt=FAST_SCRYPT)
    assert len(vault.key_wrappers()) == 2
    other = Vault.open(vault.store, "second passphrase")
    assert other.config.vault_id == vault.config.vault_id
    assert other.get_chunk(chunk_id) == b"written before the second wrapper existed"
    first = next(w["id"] for w in vault.key_wrappers() if w["id"] != second)
    other.remove_key_wrapper(first)
    with pytest.raises(AuthError):
        Vault.open(vault.store, PASSPHRASE)
    assert Vault.open(vault.store, "second passphrase").get_chunk(chunk_id).startswith(b"written")


def test_adding_a_wrapper_does_not_touch_data(vault: Vault) -> None:
    vault.put_chunk(b"data")
    before = {k: v for k, v in store_snapshot(vault.store).items() if not k.startswith("keys/")}
    vault.add_passphrase("another", scrypt=FAST_SCRYPT)
    after = {k: v for k, v in store_snapshot(vault.store).items() if not k.startswith("keys/")}
    assert after == before


def test_removing_the_last_wrapper_is_refused(vault: Vault) -> None:
    (only,) = vault.key_wrappers()
    before = store_snapshot(vault.store)
    with pytest.raises(AuthError, match="last key wrapper"):
        vault.remove_key_wrapper(only["id"])
    assert store_snapshot(vault.store) == before
    assert Vault.open(vault.store, PASSPHRASE)


def test_a_junk_key_record_does_not_count_as_a_wrapper(vault: Vault) -> None:
    (only,) = vault.key_wrappers()
    vault.store.put("keys/junk", b"{}")
    with pytest.raises(AuthError, match="last key wrapper"):
        vault.remove_key_wrapper(only["id"])


# ---- chunks ---------------------------------------------------------------------------------------------


def test_put_chunk_dedups_and_packs_on_commit(vault: Vault) -> None:
    data = os.urandom(10_000)
    chunk_id, stored = vault.put_chunk(data)
    assert stored > len(data)  # header + tag on incompressible data
    assert chunk_id == vault.keyring.chunk_id(data)
    assert vault.put_chunk(data) == (chunk_id, 0)
    assert vault.put_chunk(memoryview(data)) == (chunk_id, 0)
    assert not [k for k in keys_of(vault.store) if k.startswith(("data/", "index/", "chunks/"))]  # not yet durable
    vault.commit_chunks()
    packs = [k for k in keys_of(vault.store) if k.startswith("data/")]
    assert len(packs) == 1 and len([k for k in keys_of(vault.store) if k.startswith("index/")]) == 1
    assert vault.chunk_object(chunk_id) == packs[0]
    assert not [k for k in keys_of(vault.store) if k.startswith("chunks/")]


def test_dedup_survives_reopening(vault: Vault) -> None:
    chunk_id, _ = vault.put_chunk(b"persisted chunk")
    vault.commit_chunks()
    before = store_snapshot(vault.store)
    reopened = Vault.open(vault.store, PASSPHRASE)
    assert reopened.has_chunk(chunk_id)
    assert reopened.put_chunk(b"persisted chunk") == (chunk_id, 0)
    reopened.commit_chunks()
    assert store_snapshot(vault.store) == before


def test_pack_key_layout(vault: Vault) -> None:
    chunk_id, _ = vault.put_chunk(b"layout")
    pack, offset, _ = chunk_location(vault, chunk_id)
    assert pack.startswith("data/") and pack.split("/")[1] == pack.split("/")[2][:2] and offset == 0
    assert chunk_key(chunk_id) == f"chunks/{chunk_id[:2]}/{chunk_id}"  # the loose layout of format v1


@pytest.mark.parametrize("data", [b"", b"x", b"compressible " * 10_000, os.urandom(300_000)],
                         ids=["empty", "one", "text", "random"])
def test_get_chunk_round_trip(vault: Vault, data: bytes) -> None:
    chunk_id, _ = vault.put_chunk(data)
    vault.commit_chunks()
    assert Vault.open(vault.store, PASSPHRASE).get_chunk(chunk_id) == data


def test_get_missing_chunk_says_missing(vault: Vault) -> None:
    missing = "ab" * 32
    with pytest.raises(IntegrityError) as info:
        vault.get_chunk(missing)
    assert missing in str(info.value) and "missing" in str(info.value)


def test_chunk_swapped_inside_its_pack_is_detected(vault: Vault) -> None:
    id_a, _ = vault.put_chunk(b"chunk A" * 100)
    id_b, _ = vault.put_chunk(b"chunk B" * 100)
    pack, off_a, len_a = chunk_location(vault, id_a)
    _, off_b, len_b = chunk_location(vault, id_b)
    data = bytearray(vault.store.get(pack))
    assert len_a == len_b
    data[off_b:off_b + len_b] = data[off_a:off_a + len_a]
    vault.store.put(pack, bytes(data))
    assert vault.get_chunk(id_a) == b"chunk A" * 100
    with pytest.raises(IntegrityError) as info:
        vault.get_chunk(id_b)
    assert id_b in str(info.value) and pack in str(info.value)


def test_authentic_chunk_with_wrong_content_is_detected(vault: Vault) -> None:
    """Sealed under B's name by the key holder but holding A's data: the id check catches it."""
    id_b = vault.keyring.chunk_id(b"real B")
    vault.chunks.put_sealed(id_b, vault.keyring.seal(ObjType.CHUNK, id_b, b"not B at all"))
    vault.commit_chunks()
    with pytest.raises(IntegrityError, match="does not match its id"):
        vault.get_chunk(id_b)


def test_flipped_byte_in_a_chunk_is_detected(vault: Vault) -> None:
    chunk_id, _ = vault.put_chunk(b"precious" * 1000)
    pack = flip_chunk_byte(vault, chunk_id)
    with pytest.raises(IntegrityError, match=chunk_id) as info:
        vault.get_chunk(chunk_id)
    assert pack in str(info.value)


def test_loose_v1_chunks_are_still_read(vault: Vault) -> None:
    """A format v1 vault stored each chunk as its own object: those keep working beside packs."""
    old = vault.keyring.chunk_id(b"from v1")
    vault.store.put(chunk_key(old), vault.keyring.seal(ObjType.CHUNK, old, b"from v1"))
    reopened = Vault.open(vault.store, PASSPHRASE)
    assert reopened.has_chunk(old) and reopened.get_chunk(old) == b"from v1"
    assert reopened.put_chunk(b"from v1") == (old, 0)  # deduplicated against the loose chunk
    assert reopened.chunk_object(old) == chunk_key(old)


# ---- manifests and the catalog ------------------------------------------------------------------------


def test_manifest_round_trip_is_sealed(vault: Vault) -> None:
    manifest = make_manifest(source={"path": "/srv/secret-source-path"})
    vault.write_manifest(manifest)
    raw = vault.store.get(manifest.key)
    assert b"/srv/secret-source-path" not in raw and raw[:3] == b"SWL" and raw[4] == ObjType.MANIFEST
    assert Vault.open(vault.store, PASSPHRASE).read_manifest_key(manifest.key) == manifest


def test_list_backups_ignores_foreign_keys(vault: Vault) -> None:
    good = make_manifest(status=BackupStatus.DONE)
    vault.write_manifest(good)
    foreign = {
        "manifests/files/README": b"hello",
        "manifests/files/not-a-backup-id": b"x",
        "manifests/files/20240102T030405Z-abcdef/extra": b"x",
        "manifests/20240102T030405Z-abcdef": b"x",
        "manifests/files/20240102T030405Z-ABCDEF": b"x",
        "elsewhere/files/20240102T030405Z-abcdef": b"x",
    }
    for key, data in foreign.items():
        vault.store.put(key, data)
    vault.store._put("manifests/files/.tmp-20240102T030405Z-abcdef", b"x")  # a crashed writer's temp file
    assert vault.manifest_keys() == [good.key]
    assert vault.list_backups() == [good]
    assert vault.latest_backup("files") == good


def test_list_backups_skips_unreadable_manifests(vault: Vault) -> None:
    good = make_manifest(status=BackupStatus.DONE)
    vault.write_manifest(good)
    vault.store.put(f"manifests/files/{make_backup_id()}", b"garbage that looks like a manifest key")
    moved = make_manifest(status=BackupStatus.DONE)
    vault.write_manifest(moved)
    stolen_key = f"manifests/files/{make_backup_id()}"
    vault.store.put(stolen_key, vault.store.get(moved.key))  # copied under another id
    assert vault.list_backups() == [good, moved]
    problems = [key for key, item in vault.iter_manifests() if isinstance(item, IntegrityError)]
    assert len(problems) == 2 and stolen_key in problems


def test_manifest_claiming_another_key_is_refused(vault: Vault) -> None:
    manifest = make_manifest()
    other_key = f"manifests/files/{make_backup_id()}"
    vault.put_record(other_key, manifest.model_dump_json().encode(), ObjType.MANIFEST)
    with pytest.raises(IntegrityError, match="claims to be"):
        vault.read_manifest_key(other_key)


def test_manifest_that_fails_the_schema_is_an_integrity_error(vault: Vault) -> None:
    key = f"manifests/files/{make_backup_id()}"
    vault.put_record(key, b'{"dataset": "files"}', ObjType.MANIFEST)
    with pytest.raises(IntegrityError, match="schema"):
        vault.read_manifest_key(key)


def test_list_backups_orders_and_filters(vault: Vault) -> None:
    a = make_manifest(n=3, dataset="files", status=BackupStatus.DONE)
    b = make_manifest(n=1, dataset="pg", kind="postgres-logical", status=BackupStatus.DONE)
    c = make_manifest(n=2, dataset="files", status=BackupStatus.FAILED)
    for m in (a, b, c):
        vault.write_manifest(m)
    assert [m.backup_id for m in vault.list_backups()] == [b.backup_id, c.backup_id, a.backup_id]
    assert vault.list_backups("files") == [c, a]
    assert vault.list_backups(status=BackupStatus.DONE) == [b, a]
    assert vault.latest_backup("pg", kind="postgres-logical") == b
    assert vault.latest_backup("pg", kind="files") is None
    assert vault.latest_backup("nothing-here") is None


def test_find_backup(vault: Vault) -> None:
    files = make_manifest(dataset="files")
    pg = make_manifest(dataset="pg")
    vault.write_manifest(files)
    vault.write_manifest(pg)
    assert vault.find_backup(pg.backup_id) == pg
    assert vault.find_backup(files.backup_id, "files") == files
    with pytest.raises(BackupNotFound):
        vault.find_backup(files.backup_id, "pg")


@pytest.mark.parametrize("backup_id", ["20991231T235959Z-000000", "latest", "", "../config", "manifests/files"])
def test_find_unknown_backup(vault: Vault, backup_id: str) -> None:
    vault.write_manifest(make_manifest())
    with pytest.raises(BackupNotFound):
        vault.find_backup(backup_id)


def test_require_done(vault: Vault) -> None:
    started = make_manifest()
    done = make_manifest(status=BackupStatus.DONE)
    vault.write_manifest(started)
    vault.write_manifest(done)
    assert vault.require_done(done.backup_id) == done
    with pytest.raises(BackupNotFound, match="STARTED"):
        vault.require_done(started.backup_id)


def test_record_type_is_enforced(vault: Vault) -> None:
    vault.put_record("reports/r1", b"report")
    assert vault.get_record("reports/r1") == b"report"
    with pytest.raises(IntegrityError):
        vault.get_record("reports/r1", ObjType.MANIFEST)
