"""Sealed objects, keyed chunk ids, passphrase key wrappers and the Keyring's secrecy."""

from __future__ import annotations

import base64
import copy
import json
import os
import pickle
import tracemalloc

import blake3
import pytest
import zstandard

from seawall import crypto
from seawall.crypto import (
    FORMAT_VERSION,
    HEADER_LEN,
    MAGIC,
    MAX_PLAINTEXT,
    Compression,
    Keyring,
    ObjType,
    ScryptParams,
    require_passphrase,
    sealed_size_max,
    unwrap_with_passphrase,
    wrap_with_passphrase,
)
from seawall.errors import AuthError, ConfigError, IntegrityError
from tests.unit.builders import FAST_SCRYPT

NAME = "0123456789abcdef" * 4
TAG_LEN = 16
MiB = 1 << 20


@pytest.fixture(scope="module")
def keyring() -> Keyring:
    return Keyring.generate()


def text_bytes(size: int) -> bytes:
    line = b"the quick brown fox jumps over the lazy dog 0123456789\n"
    return (line * (size // len(line) + 1))[:size]


def seal_raw(keyring: Keyring, payload: bytes, *, compression: int = Compression.ZSTD,
             obj_type: int = ObjType.CHUNK, name: str = NAME, version: int = FORMAT_VERSION) -> bytes:
    """Seal an arbitrary payload exactly as Keyring.seal does, skipping its compression step.

    Only someone holding the key can do this; it stands for a bug (or a malicious key holder)
    producing an authentic object whose payload is hostile.
    """
    nonce = os.urandom(12)
    header = MAGIC + bytes((version, obj_type, compression)) + nonce
    return header + keyring._enc.encrypt(nonce, payload, header[:6] + name.encode())


def zeros_frame(size: int, *, declare_size: bool) -> bytes:
    """A zstd frame of `size` zero bytes, compressed in 1 MiB steps (never holds `size` bytes)."""
    cobj = zstandard.ZstdCompressor(level=1, write_content_size=declare_size).compressobj(
        size=size if declare_size else -1
    )
    block, out = bytes(MiB), []
    for _ in range(size // MiB):
        out.append(cobj.compress(block))
    out.append(cobj.compress(bytes(size % MiB)))
    out.append(cobj.flush())
    return b"".join(out)


# ---- round trips -------------------------------------------------------------------------------

ROUND_TRIP = {
    "empty": b"",
    "one-byte": b"x",
    "below-compression-threshold": b"a" * 63,
    "compressible-small": b"a" * 64,
    "text-100k": text_bytes(100_000),
    "random-1k": os.urandom(1024),
    "text-4MiB": text_bytes(4 * MiB),
    "random-4MiB": os.urandom(4 * MiB),
}


@pytest.mark.parametrize("plaintext", ROUND_TRIP.values(), ids=ROUND_TRIP.keys())
@pytest.mark.parametrize("obj_type", [ObjType.CHUNK, ObjType.MANIFEST, ObjType.WAL])
def test_seal_open_round_trip(keyring: Keyring, plaintext: bytes, obj_type: int) -> None:
    blob = keyring.seal(obj_type, NAME, plaintext)
    assert keyring.open(obj_type, NAME, blob) == plaintext


def test_compressible_data_is_stored_compressed(keyring: Keyring) -> None:
    plaintext = text_bytes(4 * MiB)
    blob = keyring.seal(ObjType.CHUNK, NAME, plaintext)
    assert blob[5] == Compression.ZSTD
    assert len(blob) < len(plaintext) // 10


@pytest.mark.parametrize("plaintext", [b"", b"x", b"a" * 63, os.urandom(4 * MiB)], ids=["0", "1", "63", "random"])
def test_small_or_incompressible_data_is_stored_raw(keyring: Keyring, plaintext: bytes) -> None:
    blob = keyring.seal(ObjType.CHUNK, NAME, plaintext)
    assert blob[5] == Compression.NONE
    assert len(blob) == HEADER_LEN + len(plaintext) + TAG_LEN


def test_seal_accepts_memoryview(keyring: Keyring) -> None:
    data = text_bytes(10_000)
    assert keyring.open(ObjType.CHUNK, NAME, keyring.seal(ObjType.CHUNK, NAME, memoryview(data))) == data


@pytest.mark.parametrize("plaintext", [b"", text_bytes(100_000), os.urandom(70_000)], ids=["empty", "text", "random"])
def test_seal_into_a_buffer_opens_like_seal(keyring: Keyring, plaintext: bytes) -> None:
    out = memoryview(bytearray(sealed_size_max(len(plaintext)) + 100))
    n = keyring.seal_into(ObjType.CHUNK, NAME, plaintext, out)
    assert n <= sealed_size_max(len(plaintext))
    assert keyring.open(ObjType.CHUNK, NAME, bytes(out[:n])) == plaintext
    assert len(keyring.seal(ObjType.CHUNK, NAME, plaintext)) == n  # the same object, another nonce
    with pytest.raises(IntegrityError):
        keyring.open(ObjType.CHUNK, "another-name", bytes(out[:n]))


def test_plaintext_never_appears_in_the_sealed_object(keyring: Keyring) -> None:
    canary = b"CANARY-3f2a9c-" * 1000
    for data in (canary, os.urandom(5000) + canary[:200] + os.urandom(5000)):
        blob = keyring.seal(ObjType.CHUNK, NAME, data)
        assert b"CANARY-3f2a9c" not in blob


# ---- the header ----------------------------------------------------------------------------------


def test_header_is_magic_version_type_compression_nonce(keyring: Keyring) -> None:
    blob = keyring.seal(ObjType.MANIFEST, NAME, b"{}")
    assert HEADER_LEN == 18
    assert blob[:3] == MAGIC == b"SWL"
    assert blob[3] == FORMAT_VERSION == 1
    assert blob[4] == ObjType.MANIFEST
    assert blob[5] == Compression.NONE


def test_every_seal_uses_a_fresh_nonce(keyring: Keyring) -> None:
    blobs = [keyring.seal(ObjType.CHUNK, NAME, b"same plaintext") for _ in range(20)]
    assert len({b[6:HEADER_LEN] for b in blobs}) == 20
    assert len(set(blobs)) == 20


@pytest.mark.parametrize("version", [0, 2, 255])
def test_unknown_format_version_is_refused_even_if_authentic(keyring: Keyring, version: int) -> None:
    blob = seal_raw(keyring, b"payload", compression=Compression.NONE, version=version)
    with pytest.raises(IntegrityError, match="format version"):
        keyring.open(ObjType.CHUNK, NAME, blob)


# ---- tampering -------------------------------------------------------------------------------------


def _positions(blob_len: int) -> dict[str, int]:
    return {
        "magic-0": 0, "magic-2": 2, "version": 3, "type": 4, "compression": 5,
        "nonce-first": 6, "nonce-mid": 11, "nonce-last": HEADER_LEN - 1,
        "body-first": HEADER_LEN, "body-mid": (HEADER_LEN + blob_len - TAG_LEN) // 2,
        "body-last": blob_len - TAG_LEN - 1,
        "tag-first": blob_len - TAG_LEN, "tag-mid": blob_len - TAG_LEN // 2, "tag-last": blob_len - 1,
    }


POSITION_NAMES = list(_positions(100))


@pytest.mark.parametrize("where", POSITION_NAMES)
@pytest.mark.parametrize("xor", [0x01, 0x80, 0xFF])
@pytest.mark.parametrize("kind", ["compressed", "raw"])
def test_flipping_any_named_byte_is_detected(keyring: Keyring, where: str, xor: int, kind: str) -> None:
    plaintext = text_bytes(200_000) if kind == "compressed" else os.urandom(5000)
    blob = bytearray(keyring.seal(ObjType.CHUNK, NAME, plaintext))
    blob[_positions(len(blob))[where]] ^= xor
    with pytest.raises(IntegrityError) as info:
        keyring.open(ObjType.CHUNK, NAME, bytes(blob))
    assert NAME in str(info.value)


def test_flipping_every_byte_of_a_small_object_is_detected(keyring: Keyring) -> None:
    blob = keyring.seal(ObjType.MANIFEST, NAME, b'{"status":"DONE"}')
    for pos in range(len(blob)):
        for xor in (0x01, 0xFF):
            bad = bytearray(blob)
            bad[pos] ^= xor
            with pytest.raises(IntegrityError):
                keyring.open(ObjType.MANIFEST, NAME, bytes(bad))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b"",
        lambda b: b[:3],
        lambda b: b[:HEADER_LEN],
        lambda b: b[: HEADER_LEN + TAG_LEN - 1],
        lambda b: b[:-1],
        lambda b: b + b"\x00",
        lambda b: b"XYZ" + b[3:],
        lambda b: os.urandom(len(b)),
    ],
    ids=["empty", "magic-only", "header-only", "too-short", "truncated", "extended", "bad-magic", "random"],
)
def test_truncated_extended_or_foreign_blobs_are_refused(keyring: Keyring, mangle) -> None:
    blob = keyring.seal(ObjType.CHUNK, NAME, b"some chunk data" * 10)
    with pytest.raises(IntegrityError):
        keyring.open(ObjType.CHUNK, NAME, mangle(blob))


def test_opening_under_another_name_fails(keyring: Keyring) -> None:
    blob = keyring.seal(ObjType.CHUNK, NAME, b"data of chunk A")
    with pytest.raises(IntegrityError, match="failed authentication"):
        keyring.open(ObjType.CHUNK, "fedcba9876543210" * 4, blob)


@pytest.mark.parametrize("other", [ObjType.MANIFEST, ObjType.WAL, ObjType.REPORT, ObjType.RECORD])
def test_opening_as_another_object_type_fails(keyring: Keyring, other: int) -> None:
    blob = keyring.seal(ObjType.CHUNK, NAME, b"chunk bytes")
    with pytest.raises(IntegrityError, match="type"):
        keyring.open(other, NAME, blob)
    # Rewriting the type byte to match does not help: the header is authenticated.
    forged = blob[:4] + bytes((other,)) + blob[5:]
    with pytest.raises(IntegrityError, match="failed authentication"):
        keyring.open(other, NAME, forged)


def test_another_keyring_cannot_open(keyring: Keyring) -> None:
    blob = keyring.seal(ObjType.CHUNK, NAME, b"secret")
    with pytest.raises(IntegrityError, match="failed authentication"):
        Keyring.generate().open(ObjType.CHUNK, NAME, blob)


# ---- decompression bombs ------------------------------------------------------------------------------


def _open_peak(keyring: Keyring, blob: bytes) -> tuple[BaseException | None, int]:
    tracemalloc.start()
    try:
        keyring.open(ObjType.CHUNK, NAME, blob)
        error = None
    except Exception as exc:
        error = exc
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return error, peak


def test_bomb_declaring_a_huge_size_is_refused_without_allocating_it(keyring: Keyring) -> None:
    frame = zeros_frame(2 * MAX_PLAINTEXT, declare_size=True)
    assert zstandard.frame_content_size(frame) == 2 * MAX_PLAINTEXT
    assert len(frame) < MiB  # 128 MiB of zeros in a few KiB
    error, peak = _open_peak(keyring, seal_raw(keyring, frame))
    assert isinstance(error, IntegrityError)
    assert "oversized" in str(error)
    assert peak < 8 * MiB


def test_bomb_without_a_declared_size_is_refused_without_allocating_it(keyring: Keyring) -> None:
    frame = zeros_frame(2 * MAX_PLAINTEXT, declare_size=False)
    assert zstandard.frame_content_size(frame) == -1
    error, peak = _open_peak(keyring, seal_raw(keyring, frame))
    assert isinstance(error, IntegrityError)
    assert peak < 8 * MiB


def test_decompression_cap_boundary(keyring: Keyring, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crypto, "MAX_PLAINTEXT", MiB)  # shrink the threshold, keep the code path
    at_cap = seal_raw(keyring, zeros_frame(MiB, declare_size=True))
    assert keyring.open(ObjType.CHUNK, NAME, at_cap) == bytes(MiB)
    over_cap = seal_raw(keyring, zeros_frame(MiB + 1, declare_size=True))
    with pytest.raises(IntegrityError, match="oversized"):
        keyring.open(ObjType.CHUNK, NAME, over_cap)


def test_sealing_more_than_the_cap_cannot_be_opened(keyring: Keyring, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crypto, "MAX_PLAINTEXT", 64 << 10)
    blob = keyring.seal(ObjType.CHUNK, NAME, text_bytes(100_000))
    assert blob[5] == Compression.ZSTD
    with pytest.raises(IntegrityError):
        keyring.open(ObjType.CHUNK, NAME, blob)


def test_frame_with_a_truncated_body_is_refused(keyring: Keyring) -> None:
    frame = zstandard.ZstdCompressor(write_content_size=True).compress(os.urandom(1000) * 50)
    with pytest.raises(IntegrityError, match="decompress"):
        keyring.open(ObjType.CHUNK, NAME, seal_raw(keyring, frame[: len(frame) // 2]))


def test_unknown_compression_is_refused(keyring: Keyring) -> None:
    with pytest.raises(IntegrityError, match="unknown compression"):
        keyring.open(ObjType.CHUNK, NAME, seal_raw(keyring, b"payload", compression=7))


def test_authentic_payload_that_is_not_zstd_is_an_integrity_error(keyring: Keyring) -> None:
    with pytest.raises(IntegrityError):
        keyring.open(ObjType.CHUNK, NAME, seal_raw(keyring, b"this is not a zstd frame at all"))


# ---- chunk ids -------------------------------------------------------------------------------------------


def test_chunk_ids_are_keyed(keyring: Keyring) -> None:
    data = b"identical data in two vaults"
    other = Keyring.generate()
    assert keyring.chunk_id(data) != other.chunk_id(data)
    assert keyring.chunk_id(data) != blake3.blake3(data).hexdigest()


def test_chunk_ids_are_deterministic_per_master_key() -> None:
    master = os.urandom(64)
    data = os.urandom(4096)
    a, b = Keyring(master), Keyring(master)
    assert a.chunk_id(data) == b.chunk_id(data) == a.chunk_id(memoryview(data))
    assert len(a.chunk_id(data)) == 64
    int(a.chunk_id(data), 16)
    assert a.chunk_id(data) != a.chunk_id(data + b"\x00")


def test_id_key_and_encryption_key_are_distinct_derivations() -> None:
    master = os.urandom(64)
    ring = Keyring(master)
    assert ring._id_key != master[:32]
    assert len(ring._id_key) == 32


@pytest.mark.parametrize("size", [0, 32, 63, 65, 128])
def test_master_key_must_be_64_bytes(size: int) -> None:
    with pytest.raises(ConfigError):
        Keyring(bytes(size))


# ---- secrecy of the keyring ----------------------------------------------------------------------


def test_repr_and_str_hide_secrets() -> None:
    master = os.urandom(64)
    ring = Keyring(master)
    for text in (repr(ring), str(ring), f"{ring!r}", repr([ring])):
        assert "secret" in text
        assert master.hex() not in text
        assert repr(master) not in text
        assert ring._id_key.hex() not in text
        assert base64.b64encode(master).decode() not in text


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickling_a_keyring_is_refused(keyring: Keyring, protocol: int) -> None:
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(keyring, protocol=protocol)


def test_copying_a_keyring_is_refused(keyring: Keyring) -> None:
    with pytest.raises(TypeError):
        copy.deepcopy(keyring)


# ---- passphrase wrappers -------------------------------------------------------------------------


def test_wrap_unwrap_round_trip() -> None:
    master = os.urandom(64)
    record = wrap_with_passphrase(Keyring(master), "hunter2", "vault-1", "w1", FAST_SCRYPT)
    ring = unwrap_with_passphrase(record, "hunter2", "vault-1")
    assert ring is not None and ring._master == master
    assert record["kind"] == "passphrase" and record["id"] == "w1"
    assert record["kdf"] == {"name": "scrypt", "n": 2**10, "r": 8, "p": 1, "salt": record["kdf"]["salt"]}
    json.dumps(record)  # JSON-able


def test_wrapper_holds_no_plaintext_key() -> None:
    master = os.urandom(64)
    text = json.dumps(wrap_with_passphrase(Keyring(master), "pw", "v", "w", FAST_SCRYPT))
    assert master.hex() not in text
    assert base64.b64encode(master).decode() not in text


def test_two_wrappers_of_one_key_use_fresh_salt_and_nonce() -> None:
    ring = Keyring.generate()
    a = wrap_with_passphrase(ring, "pw", "v", "w", FAST_SCRYPT)
    b = wrap_with_passphrase(ring, "pw", "v", "w", FAST_SCRYPT)
    assert a["kdf"]["salt"] != b["kdf"]["salt"]
    assert a["nonce"] != b["nonce"]
    assert a["wrapped"] != b["wrapped"]


@pytest.mark.parametrize("passphrase", ["hunter3", "Hunter2", "hunter2 ", "", "\u00fcber"])
def test_wrong_passphrase_gives_none(passphrase: str) -> None:
    record = wrap_with_passphrase(Keyring.generate(), "hunter2", "vault-1", "w1", FAST_SCRYPT)
    assert unwrap_with_passphrase(record, passphrase, "vault-1") is None


def test_unicode_passphrase_round_trips() -> None:
    record = wrap_with_passphrase(Keyring.generate(), "p\u00e4ss \u2603 w\u00f6rd", "v", "w", FAST_SCRYPT)
    assert unwrap_with_passphrase(record, "p\u00e4ss \u2603 w\u00f6rd", "v") is not None


def test_wrapper_is_bound_to_its_vault_and_id() -> None:
    record = wrap_with_passphrase(Keyring.generate(), "pw", "vault-1", "w1", FAST_SCRYPT)
    assert unwrap_with_passphrase(record, "pw", "vault-2") is None
    assert unwrap_with_passphrase({**record, "id": "w2"}, "pw", "vault-1") is None


def test_tampered_wrapper_gives_none() -> None:
    record = wrap_with_passphrase(Keyring.generate(), "pw", "v", "w", FAST_SCRYPT)
    wrapped = bytearray(base64.b64decode(record["wrapped"]))
    wrapped[0] ^= 1
    assert unwrap_with_passphrase({**record, "wrapped": base64.b64encode(wrapped).decode()}, "pw", "v") is None


@pytest.mark.parametrize(
    "breakage",
    [
        pytest.param(lambda r: {k: v for k, v in r.items() if k != "kdf"}, id="no-kdf"),
        pytest.param(lambda r: {k: v for k, v in r.items() if k != "nonce"}, id="no-nonce"),
        pytest.param(lambda r: {**r, "kdf": {**r["kdf"], "n": "lots"}}, id="bad-n"),
        pytest.param(lambda r: {**r, "kdf": {**r["kdf"], "salt": "!!not base64!!"}}, id="bad-salt"),
        pytest.param(lambda r: {**r, "nonce": "AAAA"}, id="short-nonce"),
        pytest.param(lambda r: {**r, "nonce": None}, id="null-nonce"),
    ],
)
def test_malformed_wrapper_is_an_integrity_error(breakage) -> None:
    record = wrap_with_passphrase(Keyring.generate(), "pw", "v", "w-id", FAST_SCRYPT)
    with pytest.raises(IntegrityError, match="w-id"):
        unwrap_with_passphrase(breakage(record), "pw", "v")


def test_empty_passphrase_cannot_wrap() -> None:
    with pytest.raises(ConfigError, match="empty passphrase"):
        wrap_with_passphrase(Keyring.generate(), "", "v", "w", FAST_SCRYPT)


def test_default_scrypt_cost_is_not_weak() -> None:
    assert ScryptParams().n >= 2**15


@pytest.mark.parametrize("missing", [None, ""])
def test_require_passphrase(missing: str | None) -> None:
    assert require_passphrase("pw") == "pw"
    with pytest.raises(AuthError):
        require_passphrase(missing)
