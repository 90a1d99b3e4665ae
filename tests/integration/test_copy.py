"""Cross-region copy between two real moto servers (two processes standing for two regions).

Covers the issue's acceptance that does not need the CLI: incremental transfers (at most 1.1x the new
chunk bytes), a corrupt source chunk failing exactly the backups that reference it, Object Lock in
compliance mode (deletes of locked versions denied, the copy still restores, retention extended),
and the bad inputs: same vault, uninitialised destination, another master key, wrong destination
credentials (permanent, no retries) and a throttling destination (503 SlowDown, retried, succeeds).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from blocks.vault import VaultTarget
from seawall.copy import CopySettings, LockSpec, copy_vault, extend_locks, prepare_destination, raise_for_failures
from seawall.errors import AuthError, ConfigError, IntegrityError, PermanentError, VaultNotInitialised
from seawall.sources.files import backup_tree, iter_tree, restore_tree
from seawall.stores import open_store
from seawall.streams import ChunkReader
from seawall.vault import Vault, open_vault
from seawall.verify import verify_vault
from tasks.copy import open_pair
from tests.fixtures.s3_faults import ThrottlingProxy, start_auth_moto
from tests.unit.builders import FAST_SCRYPT, PASSPHRASE, SMALL_CHUNKER, flip_chunk_byte

DEST_PASSPHRASE = "the other region's passphrase"
KiB, MiB = 1 << 10, 1 << 20


# ---- helpers --------------------------------------------------------------------------------------
def _files(root: Path, count: int, size: int, prefix: str = "f") -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (root / f"{prefix}{i}").write_bytes(os.urandom(size))


def _init(url: str) -> Vault:
    return Vault.init(open_store(url, create=True), PASSPHRASE, scrypt=FAST_SCRYPT, chunker=SMALL_CHUNKER)


def _dest(source: Vault, url: str, **store_options) -> Vault:
    store = open_store(url, create=True, **store_options)
    return prepare_destination(source, store, DEST_PASSPHRASE, init=True, scrypt=FAST_SCRYPT)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _boto(url: str):
    from seawall.stores.s3 import parse_s3_url

    args = parse_s3_url(url)
    return boto3.client("s3", endpoint_url=args["endpoint"], region_name=args["region"]), args["bucket"]


@pytest.fixture
def source(s3_vault_url: str) -> Vault:
    return _init(s3_vault_url)


# ---- copying and restoring ------------------------------------------------------------------------
def test_copy_restores_at_destination_and_reruns_copy_nothing(source, s3_vault_url_b, tmp_path):
    data = tmp_path / "data"
    _files(data, 12, 150 * KiB)
    first = backup_tree(source, data, "files-data")
    _files(data / "more", 3, 200 * KiB)
    second = backup_tree(source, data, "files-data", parent=first)
    dest = _dest(source, s3_vault_url_b)

    report = raise_for_failures(copy_vault(source, dest, settings=CopySettings(workers=4)))
    assert [b.status for b in report.backups] == ["copied", "copied"]
    # 36 chunks in a handful of packs, and the two manifests
    assert 3 <= report.stats["objects_copied"] <= 8 and report.lag[0]["lag_s"] == 0
    assert list(dest.store.list("chunks/")) == [] and len(list(dest.store.list("data/"))) >= 1

    # Only the destination's URL and passphrase from here on.
    dr = Vault.open(open_store(s3_vault_url_b), DEST_PASSPHRASE)
    assert verify_vault(dr, read_data=True).ok
    restore_tree(dr, dr.require_done(second.backup_id), tmp_path / "restored")
    assert _tree(tmp_path / "restored") == _tree(data)

    again = copy_vault(source, dest)
    assert again.stats["bytes_copied"] == 0 and [b.status for b in again.backups] == ["present", "present"]


def test_incremental_copy_sends_at_most_1_1x_the_new_chunk_bytes(source, s3_vault_url_b, tmp_path):
    data = tmp_path / "data"
    _files(data, 20, 256 * KiB)
    first = backup_tree(source, data, "files-data")
    dest = _dest(source, s3_vault_url_b)
    copy_vault(source, dest)

    _files(data / "new", 6, 512 * KiB)
    (data / "f3").write_bytes(os.urandom(256 * KiB))
    second = backup_tree(source, data, "files-data", parent=first)
    added = second.stats.stored_bytes_new
    report = raise_for_failures(copy_vault(source, dest))
    assert [b.status for b in report.backups] == ["present", "copied"]
    assert added > 3 * MiB
    assert report.stats["bytes_copied"] <= 1.1 * added, (report.stats["bytes_copied"], added)
    assert report.objects_skipped >= 19  # the unchanged files' chunks


def test_selection_latest_and_dataset_filter(source, s3_vault_url_b, tmp_path):
    for name in ("a", "b"):
        _files(tmp_path / name, 2, 64 * KiB)
        backup_tree(source, tmp_path / name, f"files-{name}")
        newest = backup_tree(source, tmp_path / name, f"files-{name}")
    dest = _dest(source, s3_vault_url_b)
    report = copy_vault(source, dest, datasets=["files-b"], backups="latest")
    assert [(b.dataset, b.backup_id, b.status) for b in report.backups] == [("files-b", newest.backup_id, "copied")]
    assert [m.backup_id for m in dest.list_backups()] == [newest.backup_id]
    with pytest.raises(ConfigError, match="no backups of dataset 'files-c'"):
        copy_vault(source, dest, datasets=["files-c"])


# ---- integrity --------------------------------------------------------------------------------------
def test_corrupt_source_chunk_fails_only_the_backups_that_reference_it(source, s3_vault_url, s3_vault_url_b,
                                                                       tmp_path):
    _files(tmp_path / "a", 4, 100 * KiB)
    _files(tmp_path / "b", 4, 100 * KiB)
    a1 = backup_tree(source, tmp_path / "a", "files-a")
    a2 = backup_tree(source, tmp_path / "a", "files-a", parent=a1)  # shares every data chunk with a1
    b1 = backup_tree(source, tmp_path / "b", "files-b")
    with ChunkReader(source) as reader:
        victim = next(e.chunks[0][0] for e in iter_tree(source, a1, reader) if e.chunks)
    pack = flip_chunk_byte(source, victim)  # one byte inside the victim's blob in its pack

    dest = _dest(source, s3_vault_url_b)
    report = copy_vault(source, dest)
    outcome = {b.backup_id: b for b in report.backups}
    assert outcome[b1.backup_id].status == "copied"
    for failed in (a1, a2):
        assert outcome[failed.backup_id].status == "failed"
        error = outcome[failed.backup_id].error
        assert victim in error and pack in error and "corrupt" in error
    with pytest.raises(IntegrityError, match=victim):
        raise_for_failures(report)
    assert not open_vault(s3_vault_url_b, DEST_PASSPHRASE).has_chunk(victim)
    assert [m.backup_id for m in dest.list_backups()] == [b1.backup_id]
    assert verify_vault(dest, read_data=True).ok


def test_pack_failing_its_stored_checksum_fails_verify_naming_it(source, s3_vault_url, tmp_path):
    """Chunks are read with ranged GETs (S3 keeps a checksum for whole objects only, and AES-GCM
    authenticates each blob); `verify --read-data` reads whole packs, with the stored checksum."""
    _files(tmp_path / "a", 2, 100 * KiB)
    manifest = backup_tree(source, tmp_path / "a", "files-a")
    with ChunkReader(source) as reader:
        victim = next(e.chunks[0][0] for e in iter_tree(source, manifest, reader) if e.chunks)
    pack = source.chunk_object(victim)
    client, bucket = _boto(s3_vault_url)
    blob = client.get_object(Bucket=bucket, Key="vault/" + pack)["Body"].read()
    # The same (authentic) bytes, stored with a checksum of other bytes: the whole read is refused.
    wrong = base64.b64encode(hashlib.sha256(blob + b"?").digest()).decode()
    client.put_object(Bucket=bucket, Key="vault/" + pack, Body=blob, ChecksumAlgorithm="SHA256",
                      ChecksumSHA256=wrong)
    report = verify_vault(open_vault(s3_vault_url, PASSPHRASE), read_data=True)
    (check,) = report.backups
    assert not check.ok and pack in check.problems[0] and f"files-a/{manifest.backup_id}" in check.problems[0]


def test_s3_to_s3_copy_writes_packs_whose_stored_checksums_match(source, s3_vault_url_b, tmp_path):
    _files(tmp_path / "a", 3, 200 * KiB)
    backup_tree(source, tmp_path / "a", "files-a")
    dest = _dest(source, s3_vault_url_b)
    raise_for_failures(copy_vault(source, dest, settings=CopySettings(verify="etag")))
    dst, dst_bucket = _boto(s3_vault_url_b)
    packs = [o["Key"] for o in dst.list_objects_v2(Bucket=dst_bucket, Prefix="vault/data/")["Contents"]]
    assert packs and "Contents" not in dst.list_objects_v2(Bucket=dst_bucket, Prefix="vault/chunks/")
    for key in packs:
        got = dst.get_object(Bucket=dst_bucket, Key=key, ChecksumMode="ENABLED")
        data = got["Body"].read()
        assert got["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
        assert got["ETag"].strip('"') == hashlib.md5(data).hexdigest()  # what the copy checked
    assert verify_vault(dest, read_data=True).ok


def test_local_source_to_s3_catches_damage_by_the_md5_of_what_was_sent(s3_env, moto_server_b, tmp_path):
    source = _init(f"file://{tmp_path}/src")
    _files(tmp_path / "d", 4, 128 * KiB)
    backup_tree(source, tmp_path / "d", "files-d")
    with ThrottlingProxy(moto_server_b, corrupt_puts=2, match="/data/") as proxy:
        url = f"s3://dr-local-{os.getpid()}/vault?region=us-east-2&endpoint={proxy.url}"
        report = raise_for_failures(copy_vault(source, _dest(source, url),
                                               settings=CopySettings(verify="etag", backoff=0.01)))
    assert proxy.corrupted == 2 and report.stats["retries"] >= 2
    direct = Vault.open(open_store(url.replace(proxy.url, moto_server_b)), DEST_PASSPHRASE)
    assert verify_vault(direct, read_data=True).ok


# ---- bad input ----------------------------------------------------------------------------------------
def test_same_vault_is_refused(tmp_path):
    src = _init(f"file://{tmp_path}/v")
    with pytest.raises(ConfigError, match="same vault"):
        prepare_destination(src, open_store(f"file://{tmp_path}/v/../v"), PASSPHRASE)
    shutil.copytree(tmp_path / "v", tmp_path / "clone")  # another location, same vault id
    with pytest.raises(ConfigError, match="same vault"):
        prepare_destination(src, open_store(f"file://{tmp_path}/clone"), PASSPHRASE)


def test_uninitialised_destination_says_how_to_init(source, s3_vault_url_b):
    with pytest.raises(VaultNotInitialised) as info:
        prepare_destination(source, open_store(s3_vault_url_b, create=True), DEST_PASSPHRASE)
    assert "--init-dest" in str(info.value) and "seawall copy --from" in str(info.value)


def test_destination_with_another_master_key_is_refused(source, tmp_path):
    _init(f"file://{tmp_path}/other")
    with pytest.raises(ConfigError, match="another master key"):
        prepare_destination(source, open_store(f"file://{tmp_path}/other"), PASSPHRASE)


def test_wrong_destination_credentials_fail_at_once(source, tmp_path, monkeypatch):
    server = start_auth_moto(str(tmp_path / "moto-auth.log"))
    try:
        url = f"s3://dr-bucket-auth/vault?region=us-east-2&endpoint={server.url}"
        good = dict(access_key_id=server.keys["AWS_ACCESS_KEY_ID"],
                    secret_access_key=server.keys["AWS_SECRET_ACCESS_KEY"])
        _dest(source, url, **good)
        _files(tmp_path / "d", 2, 64 * KiB)
        backup_tree(source, tmp_path / "d", "files-d")
        monkeypatch.setenv("SEAWALL_PASSPHRASE", PASSPHRASE)
        src_target = VaultTarget(url=source.url)
        bad = VaultTarget(url=url, passphrase=DEST_PASSPHRASE, aws_access_key_id=good["access_key_id"],
                          aws_secret_access_key="not-the-secret")
        started = time.monotonic()
        with pytest.raises(AuthError) as info:
            open_pair(src_target, bad)
        assert isinstance(info.value, PermanentError) and time.monotonic() - started < 5
        assert "403" in str(info.value) and "dr-bucket-auth" in str(info.value)
        unknown = VaultTarget(url=url, passphrase=DEST_PASSPHRASE, aws_access_key_id="AKIANOSUCHKEY",
                              aws_secret_access_key="x")
        with pytest.raises(AuthError, match="403"):
            open_pair(src_target, unknown)
    finally:
        server.stop()


def test_throttling_destination_is_retried_and_succeeds(source, s3_env, moto_server_b, tmp_path):
    _files(tmp_path / "d", 8, 128 * KiB)
    backup_tree(source, tmp_path / "d", "files-d")
    with ThrottlingProxy(moto_server_b, fail_puts=8, match="/data/") as proxy:
        url = f"s3://dr-throttle-{os.getpid()}/vault?region=us-east-2&endpoint={proxy.url}"
        dest = _dest(source, url)
        report = raise_for_failures(copy_vault(source, dest, settings=CopySettings(workers=2, backoff=0.05)))
        assert proxy.throttled == 8 and report.stats["retries"] >= 1
        assert proxy.forwarded_puts == report.stats["objects_copied"] - 1 >= 1  # the packs; and the manifest
    assert verify_vault(Vault.open(open_store(url.replace(proxy.url, moto_server_b)), DEST_PASSPHRASE),
                        read_data=True).ok


@pytest.mark.parametrize("verify", ["etag", "readback"])
def test_damage_in_transit_is_caught_at_the_destination_and_resent(source, s3_env, moto_server_b, tmp_path, verify):
    _files(tmp_path / "d", 4, 128 * KiB)
    backup_tree(source, tmp_path / "d", "files-d")
    with ThrottlingProxy(moto_server_b, corrupt_puts=3, match="/data/") as proxy:
        url = f"s3://dr-damage-{verify}-{os.getpid()}/vault?region=us-east-2&endpoint={proxy.url}"
        dest = _dest(source, url)
        report = raise_for_failures(copy_vault(source, dest, settings=CopySettings(verify=verify, backoff=0.01)))
    assert proxy.corrupted == 3 and report.stats["retries"] >= 3
    direct = Vault.open(open_store(url.replace(proxy.url, moto_server_b)), DEST_PASSPHRASE)
    assert verify_vault(direct, read_data=True).ok


def test_damage_on_every_attempt_fails_the_backup_not_the_run(source, s3_env, moto_server_b, tmp_path):
    _files(tmp_path / "d", 1, 64 * KiB)
    backup_tree(source, tmp_path / "d", "files-d")
    with ThrottlingProxy(moto_server_b, corrupt_puts=1000, match="/data/") as proxy:
        url = f"s3://dr-damage-all-{os.getpid()}/vault?region=us-east-2&endpoint={proxy.url}"
        report = copy_vault(source, _dest(source, url), settings=CopySettings(attempts=2, backoff=0.01))
    assert [b.status for b in report.backups] == ["failed"] and "differs at the destination" in report.failures[0]
    direct = Vault.open(open_store(url.replace(proxy.url, moto_server_b)), DEST_PASSPHRASE)
    assert direct.list_backups() == [] and list(direct.store.list("data/")) == []  # damaged copies removed


# ---- Object Lock ----------------------------------------------------------------------------------
def test_object_lock_compliance_denies_deletes_and_the_copy_restores(source, s3_vault_url, s3_vault_url_b, tmp_path,
                                                                     monkeypatch):
    data = tmp_path / "data"
    _files(data, 5, 100 * KiB)
    manifest = backup_tree(source, data, "files-data")
    monkeypatch.setenv("SEAWALL_PASSPHRASE", PASSPHRASE)
    lock = LockSpec.parse("compliance", 2)
    _, dest = open_pair(VaultTarget(url=s3_vault_url), VaultTarget(url=s3_vault_url_b, passphrase=DEST_PASSPHRASE),
                        lock, init=True)
    raise_for_failures(copy_vault(source, dest))

    client, bucket = _boto(s3_vault_url_b)
    versions = client.list_object_versions(Bucket=bucket, Prefix="vault/")["Versions"]
    copied = [v for v in versions if v["Key"].startswith(("vault/data/", "vault/index/", "vault/manifests/"))]
    assert len(copied) >= 3
    soon = datetime.now(UTC) + timedelta(days=1)
    for v in copied:
        head = client.head_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
        assert head["ObjectLockMode"] == "COMPLIANCE" and head["ObjectLockRetainUntilDate"] > soon
        with pytest.raises(ClientError) as denied:
            client.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
        assert denied.value.response["Error"]["Code"] == "AccessDenied"
    restore_tree(dest, dest.require_done(manifest.backup_id), tmp_path / "restored")
    assert _tree(tmp_path / "restored") == _tree(data)

    # A chunk whose retention runs out early is found, then extended (moto lets us shorten it to set this up).
    key = dest.chunk_object(manifest.streams[0].chunks[0][0])
    dest.store.set_retention(key, "COMPLIANCE", datetime.now(UTC) + timedelta(hours=1))
    checked = extend_locks(dest, lock, extend=False)
    assert checked.expiring == [key] and checked.ok == checked.checked - 1
    extended = extend_locks(dest, lock)
    assert extended.extended == 1 and dest.store.retention(key)[1] > soon


def test_object_lock_needs_a_lock_enabled_bucket(source, s3_vault_url_b, monkeypatch):
    _dest(source, s3_vault_url_b)  # a plain bucket
    monkeypatch.setenv("SEAWALL_PASSPHRASE", PASSPHRASE)
    target = VaultTarget(url=s3_vault_url_b, passphrase=DEST_PASSPHRASE)
    with pytest.raises(ConfigError, match="has no Object Lock"):
        open_pair(VaultTarget(url=source.url), target, LockSpec("GOVERNANCE", 1))
