"""Format v2 on an in-memory store: pack files, index files, the local index cache, repair."""

from __future__ import annotations

import os
import threading

import pytest

from seawall.crypto import ObjType
from seawall.errors import IntegrityError
from seawall.vault import Vault
from seawall.vault.cache import IndexCache
from seawall.vault.index import decode_index, encode_index, load_index
from seawall.vault.packs import BlobEntry, is_pack_key, parse_pack, read_header
from seawall.vault.reader import coalesce
from seawall.vault.repair import rebuild_index
from tests.unit.builders import PASSPHRASE, chunk_location, memory_vault


@pytest.fixture
def vault(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Vault:
    monkeypatch.setenv("SEAWALL_CACHE_DIR", str(tmp_path / "cache"))
    return memory_vault()


def _keys(vault: Vault, prefix: str) -> list[str]:
    return sorted(k for k in vault.store._objects if k.startswith(prefix))


def test_a_pack_is_self_describing_and_bound_to_its_name(vault: Vault) -> None:
    ids = [vault.put_chunk(f"blob {n} ünïcode".encode() * 50)[0] for n in range(5)]
    vault.commit_chunks()
    (pack,) = _keys(vault, "data/")
    assert is_pack_key(pack)
    data = vault.store.get(pack)
    entries = parse_pack(vault.keyring, pack, data)
    assert [e.chunk_id for e in entries] == ids
    assert read_header(vault.store, vault.keyring, pack) == entries  # two ranged reads, same answer
    for e in entries:
        assert vault.keyring.open(ObjType.CHUNK, e.chunk_id, data[e.offset:e.offset + e.length])
    moved = "data/00/" + "00" * 32
    with pytest.raises(IntegrityError, match="failed authentication"):
        parse_pack(vault.keyring, moved, data)  # the header names its pack: a copy under another name fails


def test_packs_fill_to_the_target_size(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEAWALL_PACK_SIZE", str(64 << 10))
    for _ in range(20):
        vault.put_chunk(os.urandom(10_000))
    vault.commit_chunks()
    sizes = sorted(len(vault.store.get(k)) for k in _keys(vault, "data/"))  # 200 KB in all
    assert len(sizes) == 3 and all(64 << 10 <= s < 80 << 10 for s in sizes[1:]) and sizes[0] < 64 << 10


def test_pack_buffers_are_reused_and_leak_nothing_into_later_packs(vault: Vault,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEAWALL_PACK_SIZE", str(64 << 10))
    made = []
    real = vault.store.pack_buffer
    monkeypatch.setattr(vault.store, "pack_buffer", lambda size: made.append(size) or real(size))
    # Big chunks first, then small ones: a reused buffer still holds the old packs' bytes past the new end.
    datas = [os.urandom(30_000) for _ in range(12)] + [os.urandom(900) for _ in range(40)]
    ids = [vault.put_chunk(d)[0] for d in datas]
    vault.commit_chunks()
    packs = _keys(vault, "data/")
    assert len(packs) >= 5 and len(made) < len(packs)  # later packs were built in earlier packs' buffers
    for pack in packs:
        parse_pack(vault.keyring, pack, vault.store.get(pack))  # each ends in its own header
    assert vault.get_chunks(ids) == datas


def test_parallel_writers_share_packs_and_lose_nothing(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEAWALL_PACK_SIZE", str(32 << 10))
    datas = [os.urandom(3000 + n) for n in range(200)]

    def write(part: list[bytes]) -> None:
        for d in part:
            vault.put_chunk(d)

    threads = [threading.Thread(target=write, args=(datas[n::4],)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    vault.commit_chunks()
    reopened = Vault.open(vault.store, PASSPHRASE)
    assert all(reopened.get_chunk(vault.keyring.chunk_id(d)) == d for d in datas)
    assert len(_keys(vault, "data/")) < 30


def test_index_files_round_trip_and_reject_truncation() -> None:
    packs = {"data/ab/" + "ab" * 32: [BlobEntry("cd" * 32, 0, 100), BlobEntry("ef" * 32, 100, 7)]}
    raw = encode_index(packs)
    assert decode_index(raw, "index/x") == packs
    with pytest.raises(IntegrityError, match="truncated"):
        decode_index(raw[:-3], "index/x")


def test_index_cache_is_used_and_follows_the_listing(vault: Vault, tmp_path) -> None:
    chunk_id, _ = vault.put_chunk(b"cached")
    vault.commit_chunks()
    (key,) = _keys(vault, "index/")
    cache = IndexCache(vault.config.vault_id)
    assert cache.get(key, len(vault.store.get(key))) is None  # written, not yet read by anyone
    assert load_index(vault.store, vault.keyring, vault.config.vault_id).get(chunk_id)
    cached = tmp_path / "cache" / vault.config.vault_id / "index" / key.split("/")[1]
    assert cached.read_bytes() == vault.store.get(key)
    reads = []
    original = vault.store._get
    vault.store._get = lambda k: reads.append(k) or original(k)  # type: ignore[method-assign]
    assert load_index(vault.store, vault.keyring, vault.config.vault_id).get(chunk_id)
    assert reads == []  # served from the cache
    cached.write_bytes(b"short")  # a cached file whose size disagrees with the listing is not used
    assert load_index(vault.store, vault.keyring, vault.config.vault_id).get(chunk_id) and reads == [key]
    vault.store.delete(key)
    load_index(vault.store, vault.keyring, vault.config.vault_id)
    assert not cached.exists()  # gone from the listing: dropped from the cache


def test_damaged_index_file_is_a_problem_not_a_crash(vault: Vault) -> None:
    vault.put_chunk(b"x" * 100)
    vault.commit_chunks()
    (key,) = _keys(vault, "index/")
    vault.store.put(key, vault.store.get(key)[:-1] + b"\0")
    index = load_index(vault.store, vault.keyring, vault.config.vault_id)
    assert index.locations == {} and key in index.problems[0]


def test_repair_rebuilds_the_index_from_pack_headers(vault: Vault) -> None:
    ids = [vault.put_chunk(os.urandom(2000))[0] for _ in range(10)]
    vault.commit_chunks()
    locations = {c: chunk_location(vault, c) for c in ids}
    for key in _keys(vault, "index/"):
        vault.store.delete(key)
    assert not Vault.open(vault.store, PASSPHRASE).has_chunk(ids[0])
    report = rebuild_index(Vault.open(vault.store, PASSPHRASE))
    assert report.ok and report.chunks == 10 and report.index_files_written == 1
    fresh = Vault.open(vault.store, PASSPHRASE)
    assert {c: fresh.chunks.index.get(c) for c in ids} == locations
    assert fresh.get_chunk(ids[3])


def test_coalesce_merges_neighbours_within_the_gap() -> None:
    runs = coalesce([(0, 10, "a"), (10, 5, "b"), (100, 5, "c"), (10_000, 1, "d")], gap=50)
    assert [(s, e, [m[2] for m in ms]) for s, e, ms in runs] == [(0, 15, ["a", "b"]), (100, 105, ["c"]),
                                                                 (10_000, 10_001, ["d"])]


def test_a_small_backup_from_many_threads_ends_in_one_pack(vault: Vault) -> None:
    barrier = threading.Barrier(4)

    def write(n: int) -> None:
        barrier.wait()  # every thread holds its own open pack at once
        for i in range(5):
            vault.put_chunk(f"thread {n} chunk {i}".encode() * 100)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    vault.commit_chunks()
    assert len(_keys(vault, "data/")) == 1 and len(vault.chunks.index.locations) == 20
    reopened = Vault.open(vault.store, PASSPHRASE)
    assert reopened.get_chunk(vault.keyring.chunk_id(b"thread 3 chunk 4" * 100)) == b"thread 3 chunk 4" * 100


def test_gc_plans_small_packs_together_and_unneeded_ones_away() -> None:
    from seawall.gc.packs import plan_packs
    from seawall.vault.index import ChunkIndex

    index = ChunkIndex()
    packs = {f"data/{n:02d}/{n:02d}" + "0" * 62: [BlobEntry(f"{n:02d}" * 32, 0, 1000)] for n in range(4)}
    index.add_packs(packs)
    listed = dict.fromkeys(packs, 1100)
    keys = sorted(packs)
    needed = {packs[k][0].chunk_id for k in keys[:3]}
    plan = plan_packs(index, listed, needed, threshold=0.25, small=4096)
    assert plan.delete == [keys[3]] and sorted(plan.repack) == keys[:3] and plan.live_moved == 3
    assert plan_packs(index, listed, needed, threshold=0.25, small=0).repack == []  # big enough: left alone


def test_verify_reads_the_stored_index_not_the_cache(vault: Vault) -> None:
    from seawall.verify import verify_vault

    chunk_id, _ = vault.put_chunk(b"indexed" * 100)
    vault.commit_chunks()
    (key,) = _keys(vault, "index/")
    Vault.open(vault.store, PASSPHRASE).has_chunk(chunk_id)  # the cache holds the good copy now
    data = bytearray(vault.store.get(key))
    data[len(data) // 2] ^= 1  # same size: the cache would still be taken for current
    vault.store.put(key, bytes(data))
    report = verify_vault(Vault.open(vault.store, PASSPHRASE))
    assert not report.ok and key in report.problems[0]
