"""One contract for every ObjectStore: the same tests run against each backend.

Backends are listed in `BACKENDS`; adding one (sftp) is one line there plus its two helpers:
`make(request, tmp_path)` returns a fresh, empty store and `plant(store, name, data)` writes an
object under a raw name behind the store's back (to prove listings skip names we did not write).
SFTP runs on the real sshd fixture (tests/test_sftp_store.py covers its URLs, host keys and faults).
The S3-only tests at the bottom cover what the contract cannot: URL parsing, credentials, Object
Lock and error translation through real botocore calls.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from pydantic import SecretStr

from seawall.errors import AuthError, ConfigError, ObjectNotFound, RetryableError
from seawall.stores import open_store
from seawall.stores.base import ObjectStore
from seawall.stores.local import LocalStore
from seawall.stores.memory import MemoryStore
from seawall.stores.s3 import S3Store, from_url
from seawall.stores.sftp import SftpStore

MiB = 1024 * 1024


# ---- backends ------------------------------------------------------------------------------------
def _make_memory(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    return MemoryStore(f"contract-{request.node.name}")


def _plant_memory(store: MemoryStore, name: str, data: bytes) -> None:
    store._objects[name] = (data, time.time())


def _make_local(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    return LocalStore(tmp_path / "vault", create=True)


def _plant_local(store: LocalStore, name: str, data: bytes) -> None:
    path = store.root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _make_s3(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    return from_url(request.getfixturevalue("s3_vault_url"), create=True)


def _plant_s3(store: S3Store, name: str, data: bytes) -> None:
    store.client.put_object(Bucket=store.bucket, Key=f"{store.prefix}/{name}", Body=data)


def _make_sftp(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    sshd = request.getfixturevalue("sshd")
    return open_store(f"sftp://root@{sshd.host}:{sshd.port}{tmp_path}/vault dir?identity={sshd.client_key}"
                      f"&known_hosts={sshd.known_hosts}", create=True, system_host_keys=False)


def _plant_sftp(store: SftpStore, name: str, data: bytes) -> None:
    path = f"{store.root}/{name}"
    store._mkdirs(os.path.dirname(path))
    with store.sftp.open(path.encode(), "wb") as fh:
        fh.write(data)


@dataclass(frozen=True)
class Backend:
    make: Callable[[pytest.FixtureRequest, Path], ObjectStore]
    plant: Callable[[Any, str, bytes], None]


BACKENDS: dict[str, Backend] = {
    "memory": Backend(_make_memory, _plant_memory),
    "local": Backend(_make_local, _plant_local),
    "s3": Backend(_make_s3, _plant_s3),
    "sftp": Backend(_make_sftp, _plant_sftp),
}


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    return BACKENDS[request.param]


@pytest.fixture
def store(backend: Backend, request: pytest.FixtureRequest, tmp_path: Path):
    with backend.make(request, tmp_path) as opened:
        yield opened


def _keys(store: ObjectStore, prefix: str = "") -> list[str]:
    return sorted(info.key for info in store.list(prefix))


# ---- the contract ----------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [0, 1, 5 * MiB], ids=["empty", "one-byte", "5MiB"])
def test_put_get_round_trip(store: ObjectStore, size: int) -> None:
    data = os.urandom(size)
    store.put("data/object", data)
    assert store.get("data/object") == data
    info = store.stat("data/object")
    assert info is not None and info.key == "data/object" and info.size == size


def test_put_overwrites(store: ObjectStore) -> None:
    store.put("config", b"first version")
    store.put("config", b"second")
    assert store.get("config") == b"second"
    assert store.stat("config").size == len(b"second")


def test_stat_and_exists(store: ObjectStore) -> None:
    assert store.stat("missing") is None
    assert not store.exists("missing")
    store.put("present", b"abc")
    assert store.exists("present")
    assert store.stat("present").size == 3


def test_get_missing_raises_object_not_found(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound):
        store.get("chunks/missing")


def test_delete_is_idempotent(store: ObjectStore) -> None:
    store.put("gone", b"x")
    store.delete("gone")
    store.delete("gone")
    store.delete("never/existed")
    assert not store.exists("gone")
    with pytest.raises(ObjectNotFound):
        store.get("gone")


def test_list_with_prefixes(store: ObjectStore) -> None:
    keys = ["chunks/ab/1", "chunks/ab/2", "chunks/ac/3", "chunks/b/4", "manifests/x", "top"]
    for i, key in enumerate(keys):
        store.put(key, b"x" * i)
    assert _keys(store) == keys
    assert _keys(store, "chunks/") == keys[:4]
    assert _keys(store, "chunks/a") == keys[:3]  # a partial segment matches like a string prefix
    assert _keys(store, "chunks/ab/") == keys[:2]
    assert _keys(store, "chunk") == keys[:4]
    assert _keys(store, "t") == ["top"]
    assert _keys(store, "nothing/") == []
    assert _keys(store, "chunks/ab/1") == ["chunks/ab/1"]
    assert {i.key: i.size for i in store.list("chunks/")} == {k: i for i, k in enumerate(keys[:4])}


def test_list_empty_store(store: ObjectStore) -> None:
    assert _keys(store) == []


def test_put_if_absent(store: ObjectStore) -> None:
    assert store.put_if_absent("lease", b"mine") is True
    assert store.put_if_absent("lease", b"theirs") is False
    assert store.get("lease") == b"mine"


BAD_KEYS = ["../x", "/abs", "a//b", "caf\u00e9", "x.tmp-seawall", "", "a/../b", "trailing/", "has space"]


def test_put_deferred_is_visible_after_commit(store: ObjectStore) -> None:
    for n in range(5):
        store.put_deferred(f"chunks/0{n}/c{n}", bytes([n]) * (n + 1))
    store.commit()
    assert {i.key for i in store.list("chunks/")} == {f"chunks/0{n}/c{n}" for n in range(5)}
    assert store.get("chunks/03/c3") == b"\x03" * 4
    store.commit()  # nothing pending: a no-op


def test_put_deferred_never_exposes_partial_objects(store: ObjectStore) -> None:
    """Before commit an object is either absent or complete: never a name with partial content."""
    store.put_deferred("chunks/aa/x", b"payload" * 1000)
    info = store.stat("chunks/aa/x")
    assert info is None or store.get("chunks/aa/x") == b"payload" * 1000
    store.commit()
    assert store.get("chunks/aa/x") == b"payload" * 1000


@pytest.mark.parametrize("key", BAD_KEYS)
def test_invalid_keys_rejected_by_every_method(store: ObjectStore, key: str) -> None:
    calls = {
        "put": lambda: store.put(key, b"x"),
        "put_if_absent": lambda: store.put_if_absent(key, b"x"),
        "get": lambda: store.get(key),
        "stat": lambda: store.stat(key),
        "exists": lambda: store.exists(key),
        "delete": lambda: store.delete(key),
    }
    for name, call in calls.items():
        with pytest.raises(ConfigError):
            call()
            pytest.fail(f"{name}({key!r}) was accepted")
    assert _keys(store) == []


def test_list_skips_foreign_names(store: ObjectStore, backend: Backend) -> None:
    store.put("chunks/good", b"ok")
    for raw in ["has space", ".tmp-xyz", "chunks/.tmp-abc", "chunks/half.tmp-seawall", "chunks/caf\u00e9"]:
        backend.plant(store, raw, b"foreign")
    assert _keys(store) == ["chunks/good"]
    assert _keys(store, "chunks/") == ["chunks/good"]


def test_concurrent_put_if_absent_has_one_winner(store: ObjectStore) -> None:
    threads, barrier = 8, threading.Barrier(8)
    results: dict[int, bool] = {}
    errors: list[BaseException] = []

    def contend(i: int) -> None:
        barrier.wait()
        try:
            results[i] = store.put_if_absent("locks/lease", f"writer-{i}".encode())
        except BaseException as exc:  # surfaced below; a thread must not swallow it
            errors.append(exc)

    workers = [threading.Thread(target=contend, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors
    winners = [i for i, won in results.items() if won]
    assert len(winners) == 1, results
    assert store.get("locks/lease") == f"writer-{winners[0]}".encode()


def test_get_range(store: ObjectStore) -> None:
    data = os.urandom(300_000)
    store.put("packs/ab/p", data)
    for offset, length in [(0, 10), (123_456, 70_000), (299_990, 10), (299_990, 100), (0, 300_000), (5, 0)]:
        assert store.get_range("packs/ab/p", offset, length) == data[offset:offset + length], (offset, length)
    assert store.get_range("packs/ab/p", 400_000, 10) == b""  # past the end: nothing, as an HTTP range
    with pytest.raises(ObjectNotFound):
        store.get_range("packs/ab/missing", 0, 10)
    with pytest.raises(ConfigError):
        store.get_range("../p", 0, 1)


def test_delete_many(store: ObjectStore) -> None:
    keys = [f"chunks/{i % 7:02x}/k{i}" for i in range(40)]  # enough for the parallel default
    for key in keys:
        store.put(key, b"x")
    store.delete_many([*keys[:30], "never/there"])
    assert _keys(store, "chunks/") == sorted(keys[30:])
    with pytest.raises(ConfigError):
        store.delete_many(["../escape"])


def test_optional_operations_have_working_defaults(store: ObjectStore) -> None:
    """Callers call these on any store (no probing): stores without a feature say so plainly."""
    import hashlib

    store.put("k", b"value")
    assert store.fetch("k").data == b"value"
    tag = store.put_etag("e", b"abc")
    assert tag == (hashlib.md5(b"abc").hexdigest() if store.put_returns_md5 else None)
    assert store.get("e") == b"abc"
    assert not store.has_object_lock()  # none of these stores was created with Object Lock
    assert store.retention("k") == (None, None)
    with pytest.raises(ObjectNotFound):
        store.retention("missing")
    with pytest.raises(ConfigError, match=r"(?i)object lock"):
        store.lock_writes("GOVERNANCE", 1)
    assert store.remove_temporaries() == []  # nothing crashed here


# ---- S3 only: URLs, credentials, Object Lock, error translation --------------------------------------
def test_s3_unknown_bucket_is_config_error(s3_vault_url: str) -> None:
    with pytest.raises(ConfigError, match="does not exist") as info:
        from_url(s3_vault_url)
    assert "seawall init" in str(info.value)


def test_s3_bucket_deleted_under_the_store(s3_vault_url: str) -> None:
    store = from_url(s3_vault_url, create=True)
    store.client.delete_bucket(Bucket=store.bucket)
    for call in (lambda: store.get("k"), lambda: store.put("k", b"x"), lambda: list(store.list())):
        with pytest.raises(ConfigError, match=store.bucket):
            call()


def test_s3_no_credentials_is_auth_error(moto_server: str) -> None:
    # No s3_env: the root clean_env fixture left no keys and no config files to find.
    with pytest.raises(AuthError, match="AWS_ACCESS_KEY_ID"):
        from_url(f"s3://seawall-nocreds/vault?region=eu-west-1&endpoint={moto_server}")


def test_s3_unknown_profile_is_config_error(moto_server: str) -> None:
    with pytest.raises(ConfigError, match="nightly"):
        from_url(f"s3://seawall-profile/vault?region=eu-west-1&endpoint={moto_server}&profile=nightly")


def test_s3_endpoint_never_reached_is_configuration(s3_env: dict[str, str]) -> None:
    from tests.fixtures.s3 import _free_port

    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"seawall-down.*connection refused"):
        from_url(f"s3://seawall-down/vault?region=eu-west-1&endpoint=http://127.0.0.1:{_free_port()}")
    with pytest.raises(ConfigError, match="unknown host"):
        from_url("s3://seawall-down/vault?region=eu-west-1&endpoint=http://no-such-host.invalid:9000")
    with pytest.raises(ConfigError, match="not an http"):
        from_url("s3://seawall-down/vault?region=eu-west-1&endpoint=htp://127.0.0.1:9000")
    assert time.monotonic() - started < 10  # at once: no retry loop


def test_s3_endpoint_down_after_it_answered_is_retryable(moto_server: str, s3_env: dict[str, str]) -> None:
    from tests.fixtures.s3_faults import ThrottlingProxy

    with ThrottlingProxy(moto_server) as proxy:
        url = f"s3://seawall-later-down/vault?region=eu-west-1&endpoint={proxy.url}"
        from_url(url, create=True).put("config", b"x")
    with pytest.raises(RetryableError, match="connection refused"):  # a new client: no kept-alive socket
        from_url(url).get("config")


def test_s3_url_parsing(moto_server: str, s3_env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="regoin"):
        from_url(f"s3://bucket-x/vault?regoin=eu-west-1&endpoint={moto_server}")
    with pytest.raises(ConfigError, match="credentials"):
        from_url("s3://AKIA:secret@bucket-x/vault")
    with pytest.raises(ConfigError, match="bogus"):
        from_url("s3://bucket-x/vault", bogus=1)
    with pytest.raises(ConfigError, match="prefix"):
        S3Store("bucket-x", "a//b")
    with pytest.raises(ConfigError, match="object lock"):
        S3Store("bucket-x", "vault", object_lock_mode="FOREVER", object_lock_days=1)


def test_s3_keys_live_under_the_prefix(s3_vault_url: str) -> None:
    store = open_store(s3_vault_url, create=True)
    store.put("chunks/ab", b"data")
    raw = store.client.list_objects_v2(Bucket=store.bucket)["Contents"]
    assert [obj["Key"] for obj in raw] == ["vault/chunks/ab"]
    from_url(s3_vault_url, create=True)  # creating an existing bucket again is fine


def test_s3_list_follows_pages(s3_vault_url: str) -> None:
    store = from_url(s3_vault_url, create=True)
    store.list_page_size = 2  # five keys, three pages
    keys = [f"k{i}" for i in range(5)]
    for key in keys:
        store.put(key, b"x")
    assert _keys(store) == keys


def test_s3_us_east_1_bucket_has_no_location_constraint(moto_server: str, s3_env: dict[str, str]) -> None:
    store = from_url(f"s3://seawall-use1-{os.getpid()}/v?region=us-east-1&endpoint={moto_server}", create=True)
    assert store.client.get_bucket_location(Bucket=store.bucket)["LocationConstraint"] is None


def test_s3_explicit_credentials_and_secrets_stay_hidden(moto_server: str, clean_env: None) -> None:
    secret = "very-secret-value-123"
    store = from_url(
        f"s3://seawall-creds-{os.getpid()}/vault?region=eu-west-1&endpoint={moto_server}",
        create=True,
        access_key_id="AKIDEXAMPLE",
        secret_access_key=SecretStr(secret),
        session_token="token-456",
    )
    store.put("k", b"v")
    for text in (repr(store), store.display_url, str(store.__dict__)):
        assert secret not in text and "token-456" not in text
    copy = pickle.loads(pickle.dumps(store))  # the live client is dropped, then rebuilt
    assert copy._client is None
    assert copy.get("k") == b"v"


def test_s3_ready_session(moto_server: str, clean_env: None) -> None:
    session = boto3.session.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="eu-west-1")
    store = S3Store(f"seawall-session-{os.getpid()}", "v", endpoint=moto_server, session=session)
    store.create_bucket()
    store.put("k", b"v")
    assert store.get("k") == b"v"
    assert pickle.loads(pickle.dumps(store))._session is None


def test_s3_object_lock_on_every_put(s3_vault_url: str) -> None:
    store = from_url(s3_vault_url, create=True, object_lock_mode="governance", object_lock_days=2)
    assert (
        store.client.get_object_lock_configuration(Bucket=store.bucket)["ObjectLockConfiguration"]["ObjectLockEnabled"]
        == "Enabled"
    )
    store.put("chunks/a", b"locked")
    assert store.put_if_absent("chunks/b", b"locked too")
    for key in ("vault/chunks/a", "vault/chunks/b"):
        head = store.client.head_object(Bucket=store.bucket, Key=key)  # GetObjectRetention: not in moto
        assert head["ObjectLockMode"] == "GOVERNANCE"
        until = head["ObjectLockRetainUntilDate"] - datetime.now(UTC)
        assert timedelta(days=2) - timedelta(minutes=5) < until <= timedelta(days=2)


def test_two_moto_servers_are_independent(s3_vault_url: str, s3_vault_url_b: str) -> None:
    a = from_url(s3_vault_url, create=True)
    b = from_url(s3_vault_url_b, create=True)
    a.put("only-here", b"a")
    assert not b.exists("only-here")
    bucket_names = {x["Name"] for x in b.client.list_buckets()["Buckets"]}
    assert a.bucket not in bucket_names and b.bucket in bucket_names
