"""S3Store integrity on a real moto server: one SHA-256 per PUT, checked again on every GET.

Writes send `x-amz-checksum-sha256` (announced by `x-amz-sdk-checksum-algorithm`) and no
Content-MD5; reads ask for the stored checksum and botocore checks the bytes against it. `fetch`
passes on what the servers vouch for (the ETag as MD5, the checked SHA-256), which the copy uses
to verify without hashing again. Request headers are observed through botocore's own event hooks.
"""

from __future__ import annotations

import base64
import hashlib
import os

import pytest

from seawall.errors import IntegrityError
from seawall.stores.s3 import S3Store, from_url


def _sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _sent_headers(store: S3Store, operation: str) -> list[dict[str, str]]:
    """Headers of every `operation` request the store sends from now on (observed, not altered)."""
    seen: list[dict[str, str]] = []

    def observe(request, **_) -> None:  # returns None: botocore sends the request as it is
        seen.append({k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()})

    store.client.meta.events.register(f"before-send.s3.{operation}", observe)
    return seen


def test_put_sends_one_sha256_that_s3_keeps(s3_vault_url: str) -> None:
    store = from_url(s3_vault_url, create=True)
    data = os.urandom(300_000)
    sent = _sent_headers(store, "PutObject")
    store.put("chunks/ab/one", data)
    (headers,) = sent
    assert "content-md5" not in headers
    assert headers["x-amz-checksum-sha256"] == _sha256(data)
    assert headers["x-amz-sdk-checksum-algorithm"] == "SHA256"
    head = store.client.head_object(Bucket=store.bucket, Key="vault/chunks/ab/one", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == _sha256(data)


def test_get_refuses_bytes_that_do_not_match_the_stored_checksum(s3_vault_url: str) -> None:
    store = from_url(s3_vault_url, create=True)
    data = os.urandom(50_000)
    # moto keeps a checksum as sent, unchecked: store one that belongs to other bytes.
    store.client.put_object(Bucket=store.bucket, Key="vault/chunks/cd/bad", Body=data,
                            ChecksumAlgorithm="SHA256", ChecksumSHA256=_sha256(data + b"x"))
    with pytest.raises(IntegrityError, match="chunks/cd/bad"):
        store.get("chunks/cd/bad")
    with pytest.raises(IntegrityError):
        store.fetch("chunks/cd/bad")


def test_fetch_reports_the_server_md5_and_the_checked_sha256(s3_vault_url: str) -> None:
    store = from_url(s3_vault_url, create=True)
    data = os.urandom(70_000)
    store.put("chunks/ef/one", data)
    got = store.fetch("chunks/ef/one")
    assert got.data == data
    assert got.md5 == hashlib.md5(data).hexdigest()
    assert got.sha256 == _sha256(data)
    # An object written without a SHA-256 (botocore's default is CRC32): no SHA-256 to pass on.
    store.client.put_object(Bucket=store.bucket, Key="vault/chunks/ef/two", Body=data)
    other = store.fetch("chunks/ef/two")
    assert other.data == data and other.sha256 is None and other.md5 == got.md5


def test_put_etag_returns_the_md5_s3_computed_and_takes_a_known_sha256(s3_vault_url: str) -> None:
    store = from_url(s3_vault_url, create=True)
    data = os.urandom(10_000)
    sent = _sent_headers(store, "PutObject")
    assert store.put_etag("chunks/aa/one", data, sha256=_sha256(data)) == hashlib.md5(data).hexdigest()
    assert sent[0]["x-amz-checksum-sha256"] == _sha256(data)


@pytest.mark.parametrize(("endpoint", "unsigned"), [
    (None, True),  # AWS itself: https
    ("https://s3.example.test", True),
    ("HTTPS://minio.example.test:9000", True),
    ("http://127.0.0.1:9000", False),  # no TLS: the signed payload hash is what protects the body
])
def test_payload_signing_only_without_tls(endpoint: str | None, unsigned: bool, s3_env: dict[str, str]) -> None:
    store = S3Store("seawall-signing", "v", endpoint=endpoint)
    config = store.client.meta.config.s3 or {}
    assert (config.get("payload_signing_enabled") is False) == unsigned
