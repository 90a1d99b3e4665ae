"""Checking a copied object at the destination, after writing it.

Two methods, chosen per destination (`auto`: `etag` on S3, `readback` elsewhere):

- `readback`: GET the object again and compare it byte for byte with what was sent. Works on
  every store; costs a full download per object.
- `etag`: compare the ETag of the PUT response with the MD5 of the bytes sent. For a single-part
  PUT without SSE-KMS/SSE-C, S3's ETag is the MD5 the server computed over the bytes it stored
  (moto computes it the same way, from the stored value), so unlike `ChecksumSHA256` (which moto
  stores as sent, unchecked) it cannot echo a wrong client value. When the source is S3 too, the
  MD5 of the bytes sent is already known without hashing them: the ETag the source server
  returned with them (`Fetched.md5`). The bytes read are the bytes the source stores, because they
  were authenticated by AES-GCM after reading (and, where the source keeps a SHA-256, checked
  against it by botocore): damage on the way cannot produce another authentic object. So "the
  destination's MD5 equals the source's MD5" proves the destination stores exactly the
  authenticated bytes, as "equals the MD5 we computed" did, with no client hashing. Otherwise
  (a non-S3 source, a source ETag that is no MD5, or the two ETags differ) the client computes the
  MD5 and compares as before: a mismatch is only declared against the bytes actually sent.
  MD5 is no defence against a forger, and needs none here: every object is authenticated by
  AES-GCM whenever it is opened; this check catches damage in transit or storage. Objects whose
  destination ETag is not an MD5 (multipart, KMS or customer-key encryption) fall back to `readback`.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from seawall.errors import ConfigError, IntegrityError
from seawall.stores import ObjectStore

if TYPE_CHECKING:
    from seawall.stores.base import Fetched

MODES = ("auto", "readback", "etag")
READBACK_PIECE = 4 << 20  # larger objects are read back and compared this many bytes at a time


def resolve(mode: str, store: ObjectStore) -> str:
    """The concrete method for `store`: `auto` becomes `etag` on S3 and `readback` elsewhere."""
    if mode not in MODES:
        raise ConfigError(f"unknown verification method {mode!r}", hint=f"use one of {', '.join(MODES)}")
    is_s3 = store.put_returns_md5
    if mode == "etag" and not is_s3:
        raise ConfigError(f"ETag verification needs an s3:// destination, not {store.display_url}",
                          hint="use --verify readback (or auto)")
    return mode if mode != "auto" else ("etag" if is_s3 else "readback")


def fetch(store: ObjectStore, key: str) -> Fetched:
    """Read `key` with what the store vouches for about the bytes (S3: ETag MD5, checked SHA-256)."""
    return store.fetch(key)


def readback(store: ObjectStore, key: str, got: Fetched) -> str | None:
    """Write `got.data`, read it back: None if the destination holds exactly those bytes, else what differs.

    `got.data` may be a view (a pack's buffer, written without a copy where the store allows)."""
    store.put(key, got.data)
    return _compare_back(store, key, got.data)


def _compare_back(store: ObjectStore, key: str, blob: bytes | memoryview) -> str | None:
    try:
        # A remote store is read back whole: a ranged read is a request
        # each, and some servers (moto) read the whole object for every range.
        if len(blob) <= READBACK_PIECE or store.remote:
            back = store.get(key)
            if back == blob:
                return None
            return (f"{key} differs at the destination {store.display_url} "
                    f"({len(back)} bytes read back, {len(blob)} sent)")
        return _compare_pieces(store, key, memoryview(blob))
    except IntegrityError as exc:
        # The stored bytes do not match the checksum sent with them (a store that keeps the
        # checksum unchecked, as moto does): they are not what was sent, the same verdict as above.
        return f"{key} differs at the destination {store.display_url} ({exc.message})"


def _compare_pieces(store: ObjectStore, key: str, view: memoryview) -> str | None:
    """Read a large object (a pack) back in `READBACK_PIECE` ranges: holding a whole second copy
    per uploading thread was most of a copy's memory (bench/SCALE.md)."""
    for start in range(0, len(view), READBACK_PIECE):
        want = view[start:start + READBACK_PIECE]
        got = store.get_range(key, start, len(want))
        if got != want:
            return (f"{key} differs at the destination {store.display_url} "
                    f"(bytes {start}-{start + len(want)}: {len(got)} read back differ from those sent)")
    if store.get_range(key, len(view), 1):
        return f"{key} differs at the destination {store.display_url} (longer than the {len(view)} bytes sent)"
    return None


def etag(store: ObjectStore, key: str, got: Fetched) -> str | None:
    """Write `got.data` to S3: None if the ETag S3 computed over the stored bytes is their MD5.

    The MD5 comes free from the source's ETag when it has one (see the module docstring), and the
    SHA-256 botocore checked on reading is sent as the PUT's checksum: no byte is hashed again.
    KMS and customer-key encryption make ETags that are not MD5s: read back.
    """
    tag = store.put_etag(key, got.data, sha256=got.sha256)
    if tag is None:
        return _compare_back(store, key, got.data)
    if tag == got.md5:
        return None
    sent = hashlib.md5(got.data, usedforsecurity=False).hexdigest()
    if tag == sent:
        return None
    return f"{key} differs at the destination {store.display_url} (ETag {tag}, sent MD5 {sent})"


METHODS = {"readback": readback, "etag": etag}
