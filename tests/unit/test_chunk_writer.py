"""ChunkWriter: the same chunks whether workers or the calling threads seal them; each chunk stored
once when several threads write the same content; a failed store fails every later call."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest

from seawall.errors import RetryableError
from seawall.streams import ChunkReader, ChunkWriter
from seawall.vault import ChunkerParams, Vault, init_vault, open_vault
from tests.unit.builders import FAST_SCRYPT, PASSPHRASE

SMALL_CHUNKS = ChunkerParams(min_size=16 << 10, avg_size=64 << 10, max_size=256 << 10)


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    url = f"file://{tmp_path / 'vault'}"
    init_vault(url, PASSPHRASE, scrypt=FAST_SCRYPT, chunker=SMALL_CHUNKS)
    return open_vault(url, PASSPHRASE)


def _streams() -> list[bytes]:
    shared = os.urandom(600_000)  # in every stream: its chunks must be stored once
    text = b"".join(b"line %d of a log file with some words\n" % n for n in range(40_000))
    return [os.urandom(300_000 * (n + 1)) + shared + text[n * 1000 :] for n in range(6)]


def _write_all(vault: Vault, streams: list[bytes], *, in_caller: bool, threads: int) -> tuple[list, object]:
    refs: list = [None] * len(streams)
    with ChunkWriter(vault, seal_in_caller=in_caller) as writer:
        def work(indexes: list[int]) -> None:
            for i in indexes:
                refs[i] = writer.write(io.BytesIO(streams[i]), f"s{i}")

        pool = [threading.Thread(target=work, args=(list(range(t, len(streams), threads)),))
                for t in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        writer.flush()
        counters = writer.counters
    return refs, counters


def test_sealing_in_the_calling_threads_stores_the_same_chunks(vault: Vault, tmp_path: Path) -> None:
    streams = _streams()
    refs, counters = _write_all(vault, streams, in_caller=True, threads=3)
    unique = {c for r in refs for c in r.chunks}
    assert counters.chunks_new == len({c[0] for c in unique})  # the shared chunks stored once
    assert counters.chunks_total == sum(len(r.chunks) for r in refs)
    with ChunkReader(vault) as reader:
        assert [reader.read_stream(r) for r in refs] == streams

    other_url = f"file://{tmp_path / 'other'}"
    init_vault(other_url, PASSPHRASE, scrypt=FAST_SCRYPT, chunker=SMALL_CHUNKS)
    other = open_vault(other_url, PASSPHRASE)
    other.keyring = vault.keyring  # same id key: the same content must get the same ids
    pooled, _ = _write_all(other, streams, in_caller=False, threads=1)
    assert [(r.size, r.hash, r.chunks) for r in pooled] == [(r.size, r.hash, r.chunks) for r in refs]


def test_a_failed_store_fails_every_later_write(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    real_put = Vault.put_chunk
    calls = {"n": 0}

    def flaky(self: Vault, data, chunk_id=None, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RetryableError("disk hiccup")
        return real_put(self, data, chunk_id, **kw)

    monkeypatch.setattr(Vault, "put_chunk", flaky)
    writer = ChunkWriter(vault, seal_in_caller=True)
    with pytest.raises(RetryableError, match="hiccup"):
        writer.write(io.BytesIO(os.urandom(1 << 20)), "first")
    with pytest.raises(RetryableError, match="hiccup"):
        writer.write(io.BytesIO(b"anything else"), "second")
    with pytest.raises(RetryableError, match="hiccup"):
        writer.flush()


@pytest.mark.parametrize("in_caller", [False, True])
def test_level_zero_stores_chunks_uncompressed_and_reads_them_back(vault: Vault, in_caller: bool) -> None:
    text = b"".join(b"row %d of a table that compresses well\n" % n for n in range(30_000))
    with ChunkWriter(vault, seal_in_caller=in_caller, level=0) as writer:
        ref = writer.write(io.BytesIO(text), "plain")
    assert writer.counters.stored_new >= len(text)  # not compressed (the seal adds its header and tag)
    with ChunkWriter(vault, level=1) as writer:  # the same text at the default level: deduplicated
        assert writer.write(io.BytesIO(text), "again").chunks == ref.chunks
    assert writer.counters.stored_new == 0
    with ChunkWriter(vault, level=1) as writer:
        writer.write(io.BytesIO(text[::-1]), "zstd")
    assert writer.counters.stored_new < len(text) // 4
    assert ChunkReader(open_vault(vault.url, PASSPHRASE)).read_stream(ref) == text


def _small_pieces() -> list[bytes]:
    text = b"".join(b"line %d of a small text file\n" % n for n in range(400))
    pieces = [os.urandom(n % 9000 + 1) if n % 2 else text[n:n + n % 9000 + 1] for n in range(300)]
    return pieces + pieces[:40] + [b"", b"x" * 10, b"tiny"]  # repeats, empty, below zstd's 64 bytes


@pytest.mark.parametrize("level", [1, 0])
def test_small_files_sealed_in_batches_store_the_same_chunks(vault: Vault, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch, level: int) -> None:
    monkeypatch.setattr(vault.store, "background_puts", True)  # as on S3: batches on the sealing thread
    pieces = _small_pieces()
    with ChunkWriter(vault, seal_in_caller=True, level=level) as writer:
        assert writer._small_batches
        small = [writer.write_small(p) for p in pieces]
    assert writer.counters.chunks_new == len({p for p in pieces if p})
    other_url = f"file://{tmp_path / 'other'}"
    init_vault(other_url, PASSPHRASE, scrypt=FAST_SCRYPT, chunker=SMALL_CHUNKS)
    other = open_vault(other_url, PASSPHRASE)
    other.keyring = vault.keyring
    with ChunkWriter(other, level=level) as plain_writer:
        plain = [plain_writer.write_chunks(io.BytesIO(p)) for p in pieces]
    assert small == plain
    assert writer.counters.stored_new == plain_writer.counters.stored_new  # compressed alike
    with ChunkReader(open_vault(vault.url, PASSPHRASE)) as reader:
        for p, (size, _, chunks) in zip(pieces, small, strict=True):
            assert b"".join(reader.iter_chunks(chunks)) == p and size == len(p)


def test_a_failed_batch_fails_the_flush_and_later_writes(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vault.store, "background_puts", True)
    real_put = Vault.put_chunk

    def flaky(self: Vault, data, chunk_id=None, **kw):
        if data.startswith(b"bad"):
            raise RetryableError("disk hiccup")
        return real_put(self, data, chunk_id, **kw)

    monkeypatch.setattr(Vault, "put_chunk", flaky)
    writer = ChunkWriter(vault, seal_in_caller=True)
    writer.write_small(b"good one")
    writer.write_small(b"bad one")
    with pytest.raises(RetryableError, match="hiccup"):
        writer.flush()
    with pytest.raises(RetryableError, match="hiccup"):
        writer.write_small(b"anything else")
    with pytest.raises(RetryableError, match="hiccup"):
        writer.close()
