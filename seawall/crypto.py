"""Sealed objects and the keyring.

Every stored object (chunk, manifest, WAL segment, report) is

    header = b"SWL" | version (1) | object type (1) | compression (1) | nonce (12)
    body   = AES-256-GCM(enc_key, nonce, payload, aad = header[:6] + object name)

where payload is zstd-compressed plaintext (or raw, when compression does not pay). Binding the
object name into the associated data means an object copied under another name fails to open.
Chunk ids are BLAKE3 keyed with a separate id key, so ids reveal nothing about the plaintext.

The keyring is a random 64-byte master key. Encryption and id keys are derived from it with HKDF.
The master key is stored only wrapped: by a passphrase through scrypt (several wrappers may exist;
add or remove one without re-encrypting data) or by an AWS KMS key (`seawall/kms.py`).
"""

from __future__ import annotations

import base64
import functools
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import blake3
import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from seawall.errors import AuthError, ConfigError, IntegrityError

MAGIC = b"SWL"
FORMAT_VERSION = 1
HEADER_LEN = 18
MAX_PLAINTEXT = 64 << 20  # no sealed object may decompress beyond this (decompression bombs)
SCRATCH_MAX = (4 << 20) + 64  # compressed payloads up to a largest chunk are decrypted in a reused buffer


def sealed_size_max(plaintext_len: int) -> int:
    """The most bytes sealing `plaintext_len` bytes can take (compression is used only if smaller)."""
    return HEADER_LEN + plaintext_len + 16


class ObjType:
    CHUNK = 1
    MANIFEST = 2
    WAL = 3
    REPORT = 4
    RECORD = 5
    PACK = 6  # a pack's header (seawall.vault.packs)
    INDEX = 7  # an index file (seawall.vault.index)


class Compression:
    NONE = 0
    ZSTD = 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode())


def _hkdf(master: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"seawall/v1/" + label).derive(master)


class Keyring:
    """The unwrapped master key and the keys derived from it. Never printed."""

    def __init__(self, master: bytes):
        if len(master) != 64:
            raise ConfigError("master key must be 64 bytes")
        self._master = master
        self._enc = AESGCM(_hkdf(master, b"enc"))
        self._id_key = _hkdf(master, b"chunk-id")

    @classmethod
    def generate(cls) -> Keyring:
        return cls(secrets.token_bytes(64))

    def __repr__(self) -> str:
        return "Keyring(<secret>)"

    def __getstate__(self) -> dict:
        raise TypeError("a Keyring must not be pickled; unwrap it where it is used")

    # -- ids -------------------------------------------------------------------------------------
    def chunk_id(self, data: bytes | memoryview) -> str:
        """Keyed BLAKE3 of the plaintext, hex."""
        return blake3.blake3(data, key=self._id_key).hexdigest()

    # -- sealing ---------------------------------------------------------------------------------
    def seal(self, obj_type: int, name: str, plaintext: bytes | memoryview, *, level: int = 1) -> bytes:
        """Compress (when it pays) and encrypt `plaintext` bound to `name`."""
        nonce, header, payload = self._frame(obj_type, plaintext, level)
        return header + self._enc.encrypt(nonce, payload, header[:6] + name.encode())

    def seal_buffer(self, obj_type: int, name: str, plaintext: bytes | memoryview, *,
                    level: int = 1) -> bytearray:
        """`seal`, into a mutable buffer: the ciphertext is written in place after the header,
        where `header + ciphertext` would copy every sealed byte once more (chunks: the hot path)."""
        nonce, header, payload = self._frame(obj_type, plaintext, level)
        blob = bytearray(HEADER_LEN + len(payload) + 16)
        self._encrypt_after(nonce, header, payload, name, memoryview(blob))
        return blob

    def seal_into(self, obj_type: int, name: str, plaintext: bytes | memoryview, out: memoryview, *,
                  level: int = 1, packed: bytes | memoryview | None = None) -> int:
        """`seal` into `out` (at least `sealed_size_max(len(plaintext))` bytes); returns the length.
        `packed`: the plaintext's zstd frame at `level` if already made (`compress_many`)."""
        nonce, header, payload = self._frame(obj_type, plaintext, level, packed)
        size = HEADER_LEN + len(payload) + 16
        self._encrypt_after(nonce, header, payload, name, out[:size])
        return size

    def _encrypt_after(self, nonce: bytes, header: bytes, payload: bytes | memoryview, name: str,
                       out: memoryview) -> None:
        out[:HEADER_LEN] = header
        self._enc.encrypt_into(nonce, payload, header[:6] + name.encode(), out[HEADER_LEN:])

    @staticmethod
    def _frame(obj_type: int, plaintext: bytes | memoryview, level: int,
               packed: bytes | memoryview | None = None) -> tuple[bytes, bytes, bytes | memoryview]:
        """(nonce, header, payload): the plaintext zstd-compressed at `level` when that saves 3% or
        more; level 0 stores it as it is (zstd's own 0 means its default level, 3)."""
        compression, payload = Compression.NONE, plaintext
        if level and len(plaintext) >= 64:
            if packed is None:
                packed = _compressor(level).compress(plaintext)
            if len(packed) < len(plaintext) * 0.97:
                compression, payload = Compression.ZSTD, packed
        nonce = os.urandom(12)
        return nonce, MAGIC + bytes((FORMAT_VERSION, obj_type, compression)) + nonce, payload

    def open(self, obj_type: int, name: str, blob: bytes | memoryview) -> bytes:
        """Authenticate, decrypt and decompress a sealed object; IntegrityError names `name`."""
        if len(blob) < HEADER_LEN + 16 or blob[:3] != MAGIC:
            raise IntegrityError(f"object {name} is not a seawall object (bad header)")
        version, stored_type, compression = blob[3], blob[4], blob[5]
        if version != FORMAT_VERSION:
            raise IntegrityError(f"object {name} has unknown format version {version}")
        if stored_type != obj_type:
            raise IntegrityError(f"object {name} has type {stored_type}, expected {obj_type}")
        nonce = bytes(blob[6:HEADER_LEN])
        # A memoryview, not blob[HEADER_LEN:]: slicing bytes would copy the whole body first.
        body, aad = memoryview(blob)[HEADER_LEN:], bytes(blob[:6]) + name.encode()
        try:
            if compression == Compression.ZSTD and len(body) - 16 <= SCRATCH_MAX:
                # Decrypted into this thread's reused buffer: only the decompressed copy is handed
                # out, and `decrypt` would zero-fill a fresh one first (under the GIL).
                payload = _scratch(len(body) - 16)
                self._enc.decrypt_into(nonce, body, aad, payload)
            else:
                payload = self._enc.decrypt(nonce, body, aad)
        except InvalidTag:
            raise IntegrityError(f"object {name} failed authentication (corrupt or tampered)") from None
        if compression == Compression.NONE:
            return payload
        if compression != Compression.ZSTD:
            raise IntegrityError(f"object {name} uses unknown compression {compression}")
        return _decompress_capped(name, payload)


# zstd contexts are reused per thread (they are not safe to share between threads): making a new
# one for every object costs more than compressing a small file, and objects are sealed and opened
# from several worker threads at once. Parameters are fixed per context, so the output is the same.
_contexts = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache = _contexts.__dict__.setdefault("compressors", {})
    if level not in cache:
        cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return cache[level]


def compress_many(pieces: list[bytes], level: int) -> zstandard.BufferWithSegmentsCollection:
    """The zstd frames of `pieces` at `level`, the same bytes `seal` would make, in one call that
    holds no GIL throughout (a compress per piece lets go of it and takes it back every time)."""
    return _compressor(level).multi_compress_to_buffer(pieces, threads=1)


def _decompressor() -> zstandard.ZstdDecompressor:
    if not hasattr(_contexts, "decompressor"):
        _contexts.decompressor = zstandard.ZstdDecompressor()
    return _contexts.decompressor


def _scratch(size: int) -> memoryview:
    """`size` bytes of this thread's reused decryption buffer (kept up to SCRATCH_MAX)."""
    buf = getattr(_contexts, "scratch", None)
    if buf is None or len(buf) < size:
        buf = _contexts.scratch = bytearray(max(size, 1 << 20))
    return memoryview(buf)[:size]


def _decompress_capped(name: str, payload: bytes | memoryview) -> bytes:
    try:
        size = zstandard.frame_content_size(payload)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"object {name} is not a valid zstd frame: {exc}") from None
    if size < 0 or size > MAX_PLAINTEXT:
        raise IntegrityError(f"object {name} declares an invalid or oversized content size")
    try:
        out = _decompressor().decompress(payload, max_output_size=MAX_PLAINTEXT)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"object {name} failed to decompress: {exc}") from None
    if len(out) != size:
        raise IntegrityError(f"object {name} decompressed to {len(out)} bytes, expected {size}")
    return out


# ---- key wrappers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ScryptParams:
    n: int = 2**15
    r: int = 8
    p: int = 1


_derive_lock = threading.Lock()


def _derive(passphrase: str, salt: bytes, params: ScryptParams) -> bytes:
    """scrypt, once per process for a given wrapper: a job's tasks each open the vault again (a Vault
    never crosses a task boundary), and scrypt's cost (~0.1 CPU-s) would otherwise be paid each time.
    The cache holds what the passphrase (already in this process) derives; new wrappers get a fresh
    random salt, so they never hit it. The CLI starts the derivation before its imports
    (`seawall.kdf_ahead`): the task that opens the vault meanwhile waits for that result rather
    than pay scrypt a second time."""
    with _derive_lock:
        return _derive_cached(passphrase, salt, params)


@functools.lru_cache(maxsize=16)
def _derive_cached(passphrase: str, salt: bytes, params: ScryptParams) -> bytes:
    from seawall import kdf_ahead

    early = kdf_ahead.take(passphrase, salt, params.n, params.r, params.p)  # started by the CLI's entry
    if early is not None:
        return early
    return Scrypt(salt=salt, length=32, n=params.n, r=params.r, p=params.p).derive(passphrase.encode())


def _kek(passphrase: str, salt: bytes, params: ScryptParams) -> AESGCM:
    return AESGCM(_derive(passphrase, salt, params))


def wrap_with_passphrase(
    keyring: Keyring, passphrase: str, vault_id: str, wrapper_id: str, params: ScryptParams | None = None
) -> dict[str, Any]:
    """A JSON-able record holding the master key encrypted under a passphrase-derived key."""
    if not passphrase:
        raise ConfigError("empty passphrase", hint="set SEAWALL_PASSPHRASE or use --passphrase-file")
    params = params or ScryptParams()
    salt, nonce = os.urandom(16), os.urandom(12)
    aad = f"seawall-key:{vault_id}:{wrapper_id}".encode()
    wrapped = _kek(passphrase, salt, params).encrypt(nonce, keyring._master, aad)
    return {
        "kind": "passphrase",
        "id": wrapper_id,
        "kdf": {"name": "scrypt", "n": params.n, "r": params.r, "p": params.p, "salt": _b64(salt)},
        "nonce": _b64(nonce),
        "wrapped": _b64(wrapped),
        "created": datetime.now(UTC).isoformat(),
    }


def unwrap_with_passphrase(record: dict[str, Any], passphrase: str, vault_id: str) -> Keyring | None:
    """The keyring if `passphrase` opens this wrapper, None if it does not."""
    try:
        kdf = record["kdf"]
        params = ScryptParams(n=int(kdf["n"]), r=int(kdf["r"]), p=int(kdf["p"]))
        aad = f"seawall-key:{vault_id}:{record['id']}".encode()
        kek = _kek(passphrase, _unb64(kdf["salt"]), params)
        return Keyring(kek.decrypt(_unb64(record["nonce"]), _unb64(record["wrapped"]), aad))
    except InvalidTag:
        return None
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise IntegrityError(f"key wrapper {record.get('id', '?')} is malformed: {exc}") from None


def require_passphrase(passphrase: str | None) -> str:
    if not passphrase:
        raise AuthError(
            "no passphrase given", hint="set SEAWALL_PASSPHRASE or pass --passphrase-file FILE"
        )
    return passphrase


def wrap_with_kms(keyring: Keyring, key_id: str, vault_id: str, wrapper_id: str,
                  region: str | None = None) -> dict[str, Any]:
    """A JSON-able record holding the master key encrypted by AWS KMS (see `seawall.kms`)."""
    from seawall import kms

    return kms.wrap(keyring._master, key_id, vault_id, wrapper_id, region)


def unwrap_with_kms(record: dict[str, Any], vault_id: str) -> Keyring:
    """The keyring a KMS wrapper holds; a seawall error in one line when KMS refuses."""
    from seawall import kms

    master = kms.unwrap(record, vault_id)
    try:
        return Keyring(master)
    except ConfigError:
        raise IntegrityError(f"key wrapper {record.get('id', '?')} decrypted to a key of the wrong size") from None


def same_master(a: Keyring, b: Keyring) -> bool:
    """True when both keyrings hold the same master key (constant-time)."""
    return secrets.compare_digest(a._master, b._master)
