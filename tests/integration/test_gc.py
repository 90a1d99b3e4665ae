"""Garbage collection and leases on real vaults: a local folder and S3 on a moto server.

Real backups of real trees; faults are injected by wrapping a real store in a subclass whose
listing fails, returns nothing, or drops objects. Tasks run through `.fn` (no Prefect server).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import seawall.sources.files as files_mod
from blocks.vault import VaultTarget
from seawall.errors import ExitCode, IntegrityError, LeaseBusy, RetryableError
from seawall.gc import collect_garbage
from seawall.lease import LEASE_KEY, LeaseLost, exclusive_lease, shared_lease
from seawall.manifest import BackupStatus, Manifest
from seawall.postgres.walnames import history_name, segment_name
from seawall.retention import RetentionPolicy, plan_retention
from seawall.sources.compare import compare_trees
from seawall.sources.files import backup_tree, restore_tree
from seawall.stores import ObjectStore
from seawall.streams import ChunkReader
from seawall.vault import Vault, init_vault, open_vault
from seawall.verify import referenced_chunks, verify_vault
from tasks.retention import prune_task
from tests.unit.builders import FAST_SCRYPT, PASSPHRASE, SMALL_CHUNKER, make_manifest, make_stream

KiB = 1 << 10


@pytest.fixture(autouse=True)
def _repack_every_pack_with_garbage(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any unused byte makes a pack a repack candidate: GC's results are then exact to assert."""
    monkeypatch.setenv("SEAWALL_GC_MAX_UNUSED", "0")


@pytest.fixture(params=["file", "s3"])
def vault_url(request, tmp_path) -> str:
    if request.param == "file":
        return f"file://{tmp_path / 'vault'}"
    return request.getfixturevalue("s3_vault_url")


@pytest.fixture
def vault(vault_url) -> Vault:
    return init_vault(vault_url, PASSPHRASE, scrypt=FAST_SCRYPT, chunker=SMALL_CHUNKER)


def target(vault: Vault, url: str) -> VaultTarget:
    return VaultTarget(url=url, passphrase=PASSPHRASE)


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


def sizes(store: ObjectStore, prefix: str = "") -> dict[str, int]:
    return {i.key: i.size for i in store.list(prefix)}


def chunks_of(vault: Vault, manifest: Manifest) -> set[str]:
    with ChunkReader(vault) as reader:
        return set(referenced_chunks(vault, manifest, reader))


def restores_completely(vault: Vault, manifest: Manifest, source: Path, out: Path) -> None:
    restore_tree(vault, vault.require_done(manifest.backup_id), str(out))
    assert compare_trees(source, out) == []


# ---- a backup running across a GC ------------------------------------------------------------------
class PausingReads:
    """Patches the file reader so the backup stops inside `pause.bin` until released."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.entered, self.release = threading.Event(), threading.Event()
        original = files_mod._read_file

        def reader(writer, item, entry, skipped, progress):
            if item.path.endswith("pause.bin"):
                self.entered.set()
                assert self.release.wait(60), "test never released the backup"
            return original(writer, item, entry, skipped, progress)

        monkeypatch.setattr(files_mod, "_read_file", reader)


def _race_setup(vault: Vault, tmp_path: Path) -> tuple[Path, bytes]:
    """B1 holds `shared` content; B2 (newer, same dataset) does not: keep-last 1 expires B1."""
    shared = os.urandom(300 * KiB)
    backup_tree(vault, write_tree(tmp_path / "v1", {"shared.bin": shared, "a.txt": b"a"}), "www")
    backup_tree(vault, write_tree(tmp_path / "v2", {"a.txt": b"a2"}), "www")
    return write_tree(tmp_path / "in-flight", {"shared.bin": shared, "pause.bin": os.urandom(50 * KiB)}), shared


def _start_backup(url: str, tree: Path, result: dict) -> threading.Thread:
    def run() -> None:
        v = open_vault(url, PASSPHRASE)
        with shared_lease(v, "backup in-flight"):
            result["manifest"] = backup_tree(v, tree, "in-flight")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("mode", ["refused", "waits"])
def test_backup_started_before_gc_and_finished_after_restores(vault, vault_url, tmp_path, monkeypatch, mode):
    tree, _ = _race_setup(vault, tmp_path)
    pause, result = PausingReads(monkeypatch), {}
    thread = _start_backup(vault_url, tree, result)
    assert pause.entered.wait(30)  # the backup has listed the vault and deduplicated shared.bin
    policy = RetentionPolicy(keep_last=1)
    plan = plan_retention(vault.list_backups("www"), policy, datetime.now(UTC))
    assert len(plan.remove) == 1
    if mode == "refused":
        with pytest.raises(LeaseBusy, match="busy: backup in-flight") as busy:
            prune_task.fn(target(vault, vault_url), plan, policy, ["www"])
        assert busy.value.exit_code == ExitCode.BUSY
        pause.release.set()
        thread.join(60)
        pruned = prune_task.fn(target(vault, vault_url), plan, policy, ["www"])
    else:
        threading.Timer(1.5, pause.release.set).start()
        pruned = prune_task.fn(target(vault, vault_url), plan, policy, ["www"], wait=60)
        thread.join(60)
    assert len(pruned.removed) == 1 and pruned.gc["chunks_deleted"] > 0
    restores_completely(vault, result["manifest"], tree, tmp_path / "restored")
    assert verify_vault(vault, read_data=True).ok


# ---- listings that fail or lie ---------------------------------------------------------------------
def faulty(store: ObjectStore, how: str) -> ObjectStore:
    """The same store object, with a listing that fails, is empty, or drops chunks / manifests."""
    base = type(store)

    class Faulty(base):  # type: ignore[misc, valid-type]
        def _list(self, prefix):
            if how == "fails":
                raise RetryableError(f"listing {prefix} in {self.display_url}: connection reset")
            for n, info in enumerate(base._list(self, prefix)):
                if how == "empty" or (how == "drops-packs" and "data/" in info.key and n):  # all but one pack
                    continue
                if how.startswith("drops-manifests") and "manifests/" in info.key:
                    continue
                yield info

    store.__class__ = Faulty
    return store


@pytest.mark.parametrize(("how", "message"), [
    ("fails", "listing .* failed: listing keys/ in .*connection reset"),
    ("empty", "looks truncated"),
    ("drops-packs", "(listing incomplete: .* referenced chunk|is missing: its pack)"),
    ("drops-manifests-all", "chunks but no manifest: refusing to delete every chunk"),
])
def test_bad_listing_deletes_nothing(vault, vault_url, tmp_path, how, message):
    backup_tree(vault, write_tree(tmp_path / "t1", {"f": os.urandom(200 * KiB)}), "www")
    backup_tree(vault, write_tree(tmp_path / "t2", {"g": os.urandom(200 * KiB)}), "www")
    vault.put_chunk(b"orphan chunk: unreferenced, so a sweep would delete it")
    vault.commit_chunks()
    before = sizes(vault.store)
    broken = open_vault(vault_url, PASSPHRASE)
    faulty(broken.store, how)
    with pytest.raises((IntegrityError, RetryableError), match=f"nothing deleted.*{message}") as err:
        collect_garbage(broken)
    assert "\n" not in str(err.value)
    assert sizes(vault.store) == before


def test_missing_manifests_in_listing_abort_the_prune(vault, vault_url, tmp_path):
    for n in range(3):
        backup_tree(vault, write_tree(tmp_path / f"t{n}", {"f": os.urandom(100 * KiB)}), "www")
    policy = RetentionPolicy(keep_last=1)
    plan = plan_retention(vault.list_backups(), policy, datetime.now(UTC))
    before = sizes(vault.store)
    broken = open_vault(vault_url, PASSPHRASE)
    faulty(broken.store, "drops-manifests")
    with pytest.raises(IntegrityError, match="nothing deleted: listing incomplete: 1 kept manifest"):
        collect_garbage(broken, expect=[f"manifests/www/{i}" for i in plan.keep])
    assert sizes(vault.store) == before


# ---- expiring half the backups ---------------------------------------------------------------------
def test_expire_half_frees_exactly_the_unreferenced_bytes(vault, vault_url, tmp_path):
    common = {"common.bin": os.urandom(200 * KiB)}
    trees, manifests = [], []
    for n in range(6):
        tree = write_tree(tmp_path / f"t{n}", common | {f"own{n}.bin": os.urandom(150 * KiB), "n.txt": b"%d" % n})
        trees.append(tree)
        manifests.append(backup_tree(vault, tree, "www", parent=manifests[-1] if manifests else None))
    policy = RetentionPolicy(keep_last=3)
    plan = plan_retention(vault.list_backups(), policy, datetime.now(UTC))
    assert sorted(plan.remove) == sorted(m.backup_id for m in manifests[:3])
    kept_refs = set().union(*(chunks_of(vault, m) for m in manifests[3:]))
    gone = set().union(*(chunks_of(vault, m) for m in manifests[:3])) - kept_refs
    packs = sizes(vault.store, "data/")
    pruned = prune_task.fn(target(vault, vault_url), plan, policy)
    after = sizes(vault.store, "data/")
    assert sum(packs.values()) - sum(after.values()) == pruned.gc["bytes_freed"] > 0
    assert pruned.gc["chunks_deleted"] == len(gone) > 0
    fresh = open_vault(vault_url, PASSPHRASE)
    assert set(fresh.chunks.index.locations) == kept_refs  # nothing unreferenced left, nothing needed lost
    assert {loc[0] for loc in fresh.chunks.index.locations.values()} == set(after)
    assert len(sizes(vault.store, "index/")) == 1  # merged
    report = verify_vault(vault, read_data=True)
    assert report.ok and {b.backup_id for b in report.backups} == {m.backup_id for m in manifests[3:]}
    for n in (3, 5):
        restores_completely(vault, manifests[n], trees[n], tmp_path / f"restored{n}")
    again = prune_task.fn(target(vault, vault_url), plan, policy)  # idempotent: nothing left to do
    assert again.removed == [] and again.gc["chunks_deleted"] == 0


def test_unfinished_and_failed_manifests_keep_their_chunks(vault, tmp_path):
    backup_tree(vault, write_tree(tmp_path / "t", {"f": os.urandom(100 * KiB)}), "www")
    chunk_id, _ = vault.put_chunk(os.urandom(40 * KiB))
    orphan, _ = vault.put_chunk(b"referenced by nothing")
    vault.commit_chunks()
    for status in (BackupStatus.STARTED, BackupStatus.FAILED):
        partial = make_manifest(dataset="www", status=status, streams=[])
        partial.streams = [make_stream("x", chunks=[(chunk_id, 40 * KiB)])]
        vault.write_manifest(partial)
    report = collect_garbage(vault)
    assert report.chunks_deleted == 1 and report.packs_repacked == 1
    fresh = open_vault(vault.url, PASSPHRASE)
    assert fresh.has_chunk(chunk_id) and not fresh.has_chunk(orphan)
    assert fresh.get_chunk(chunk_id)


# ---- WAL ------------------------------------------------------------------------------------------
def test_wal_older_than_the_oldest_kept_physical_backup_is_removed(vault):
    sysid = "7300000000000000001"
    names = [segment_name(1, n) for n in range(1, 9)] + [history_name(2), segment_name(2, 6),
                                                         segment_name(1, 2) + ".00000028.backup"]
    for name in names:
        vault.store.put(f"wal/{sysid}/{name}", b"sealed WAL stand-in")
    for start in (segment_name(1, 4), segment_name(2, 6)):
        vault.write_manifest(make_manifest(dataset="pg", kind="postgres-physical", status=BackupStatus.DONE,
                                           streams=[], source={"system_identifier": sysid,
                                                               "start_wal_file": start}))
    report = collect_garbage(vault)
    removed = sorted(k.rsplit("/", 1)[1] for k in report.wal_removable)
    assert removed == sorted([segment_name(1, n) for n in (1, 2, 3)] + [segment_name(1, 2) + ".00000028.backup"])
    assert report.wal_deleted == 4
    left = {i.key.rsplit("/", 1)[1] for i in vault.store.list(f"wal/{sysid}/")}
    assert history_name(2) in left and segment_name(1, 4) in left and segment_name(2, 6) in left


# ---- leases --------------------------------------------------------------------------------------
def test_leases_exclude_each_other(vault, vault_url):
    other = open_vault(vault_url, PASSPHRASE)
    with exclusive_lease(vault, "gc one"):
        with pytest.raises(LeaseBusy, match="gc one \\(exclusive\\)"):
            exclusive_lease(other, "gc two").__enter__()
        with pytest.raises(LeaseBusy, match="backup did not start"):
            shared_lease(other, "backup", wait=0).__enter__()
    busy = pytest.raises(LeaseBusy, match=r"busy: .*\(shared\).*\(\+1 more\)")
    with shared_lease(vault, "backup a"), shared_lease(other, "copy b"), busy:
        exclusive_lease(other, "gc").__enter__()
    with exclusive_lease(other, "gc after"):
        pass
    assert list(vault.store.list("locks/")) == []


def test_exclusive_waits_for_a_shared_holder(vault, vault_url):
    other = open_vault(vault_url, PASSPHRASE)
    lease = shared_lease(vault, "backup")
    lease.__enter__()
    threading.Timer(1.0, lease.__exit__, (None, None, None)).start()
    started = time.monotonic()
    with exclusive_lease(other, "gc", wait=30):
        assert time.monotonic() - started >= 0.9


def test_stale_leases_are_broken_and_renewal_keeps_them(vault, vault_url, caplog):
    other = open_vault(vault_url, PASSPHRASE)
    with exclusive_lease(vault, "long gc", ttl=1.5) as held:
        time.sleep(2.5)  # renewed every 0.5 s: still live
        with pytest.raises(LeaseBusy):
            exclusive_lease(other, "gc").__enter__()
        held.check()
    crashed = exclusive_lease(vault, "crashed gc", ttl=0.3)
    lease = crashed.__enter__()
    lease._stop.set()  # simulate a crash: no more renewals, no release
    time.sleep(0.6)
    with caplog.at_level(logging.WARNING, logger="seawall.lease"), exclusive_lease(other, "next gc"):
        pass
    assert "breaking the lease locks/lease" in caplog.text and "crashed gc" in caplog.text
    with pytest.raises(LeaseLost):
        lease.check()
    # End the "crashed" holder's context now: left to the garbage collector, its release would run
    # in a later test, against a store whose server may be gone (an unraisable-exception warning).
    lease.held = False
    crashed.__exit__(None, None, None)


def test_unreadable_lease_counts_as_held_until_it_ages_out(vault):
    vault.store.put(LEASE_KEY, b"garbage")
    with pytest.raises(LeaseBusy, match="unreadable lease object"):
        exclusive_lease(vault, "gc").__enter__()


# ---- Object Lock (S3) ------------------------------------------------------------------------------
def test_object_locked_chunks_are_skipped_and_reported(s3_vault_url):
    from seawall.stores.s3 import S3Store, parse_s3_url

    store = S3Store(**parse_s3_url(s3_vault_url), object_lock_mode="GOVERNANCE", object_lock_days=1)
    store.create_bucket()
    vault = Vault.init(store, PASSPHRASE, scrypt=FAST_SCRYPT)
    orphan, _ = vault.put_chunk(b"unreferenced, but locked until tomorrow")
    vault.commit_chunks()
    locked_pack = vault.chunk_object(orphan)
    vault.write_manifest(make_manifest(status=BackupStatus.DONE, streams=[]))
    store.object_lock_mode = store.object_lock_days = None  # this one is not locked
    unlocked, _ = vault.put_chunk(b"unreferenced and deletable")
    vault.commit_chunks()
    unlocked_pack = vault.chunk_object(unlocked)
    report = collect_garbage(vault)
    # The locked index file listing the locked pack stays, so the pack is not even tried; both reported
    assert report.locked and all(k.startswith("index/") or k == locked_pack for k in report.locked)
    assert report.chunks_deleted == 1 and report.packs_deleted == 1
    assert store.exists(locked_pack) and not store.exists(unlocked_pack)
    assert report.chunks_unreferenced == 2 and report.bytes_freed > 0
    assert datetime.now(UTC) + timedelta(hours=23) < store.retention(locked_pack)[1]
    assert open_vault(s3_vault_url, PASSPHRASE).has_chunk(orphan)  # still indexed: its pack stays


def test_buckets_without_object_lock_are_not_probed(s3_vault_url, tmp_path):
    from seawall.gc import lock_probe
    from seawall.stores import open_store

    assert lock_probe(open_store(s3_vault_url, create=True)) is None
    assert lock_probe(open_store(f"file://{tmp_path}")) is None


# ---- temporaries of crashed writes ---------------------------------------------------------------
@pytest.mark.parametrize("where", ["file", "sftp"])
def test_gc_removes_old_temporaries_of_crashed_writes(where, tmp_path, request):
    """A kill -9 between writing a temporary file and renaming it leaves `.tmp-*`: GC removes it
    once older than TEMPORARY_MAX_AGE, and leaves young ones (a write may be in flight) alone."""
    from seawall.stores.base import TEMPORARY_MAX_AGE

    root = tmp_path / "vault"
    if where == "file":
        url = f"file://{root}"
    else:
        sshd = request.getfixturevalue("sshd")
        url = (f"sftp://root@{sshd.host}:{sshd.port}{root}?identity={sshd.client_key}"
               f"&known_hosts={sshd.known_hosts}")
    vault = init_vault(url, PASSPHRASE, scrypt=FAST_SCRYPT, chunker=SMALL_CHUNKER)
    chunk, _ = vault.put_chunk(b"live chunk")
    vault.commit_chunks()
    vault.write_manifest(make_manifest(status=BackupStatus.DONE, streams=[make_stream(chunks=[(chunk, 10)])]))
    folder = root / vault.chunk_object(chunk).rsplit("/", 1)[0]
    old, young = folder / ".tmp-crashed-0", root / "manifests" / ".tmp-inflight-1"
    young.parent.mkdir(exist_ok=True)
    for path in (old, young):
        path.write_bytes(b"half an object")
    os.utime(old, (time.time() - TEMPORARY_MAX_AGE - 60,) * 2)
    assert collect_garbage(vault, dry_run=True).temporaries_deleted == 0 and old.exists()
    report = collect_garbage(vault)
    assert report.temporaries_deleted == 1 and not old.exists() and young.exists()
    assert vault.get_chunk(chunk) and report.chunks_deleted == 0
    vault.store.close()
