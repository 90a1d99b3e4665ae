"""LocalStore's direct-I/O chunk writes: aligned buffers, every tail length, the page cache
really bypassed (checked with mincore(2)), and the fallbacks (a misaligned buffer, turned off)."""

from __future__ import annotations

import ctypes
import mmap
import os
import threading
from pathlib import Path

import pytest

from seawall.stores.local import DIRECT_ALIGN, DIRECT_MIN, LocalStore
from seawall.vault import Vault, init_vault, open_vault
from tests.unit.builders import FAST_SCRYPT, PASSPHRASE

_LIBC = ctypes.CDLL(None, use_errno=True)


def _address(view: memoryview) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(view))


def cached_pages(path: Path) -> tuple[int, int]:
    """(pages of `path` in the page cache, pages in all), from mincore(2) on a mapping of it."""
    size = path.stat().st_size
    pages = -(-size // mmap.PAGESIZE)
    vec = (ctypes.c_ubyte * pages)()
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_COPY) as mapped:
        anchor = ctypes.c_char.from_buffer(mapped)  # a private mapping: writable, so it has an address
        try:
            if _LIBC.mincore(ctypes.c_void_p(ctypes.addressof(anchor)), ctypes.c_size_t(size), vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
        finally:
            del anchor
    return sum(v & 1 for v in vec), pages


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "vault", create=True)


def _fill(store: LocalStore, data: bytes) -> memoryview:
    buf = store.write_buffer(len(data))
    assert buf is not None
    buf[: len(data)] = data
    return buf[: len(data)]


def test_write_buffer_is_page_aligned_and_one_per_thread(store: LocalStore) -> None:
    first = store.write_buffer(1 << 20)
    assert first is not None and _address(first) % DIRECT_ALIGN == 0
    assert _address(store.write_buffer(1 << 20)) == _address(first)  # reused by the same thread
    other: list[int] = []
    t = threading.Thread(target=lambda: other.append(_address(store.write_buffer(1 << 20))))
    t.start()
    t.join()
    assert other[0] != _address(first) and other[0] % DIRECT_ALIGN == 0
    bigger = store.write_buffer((4 << 20) + 34)
    assert bigger is not None and len(bigger) >= (4 << 20) + 34 and _address(bigger) % DIRECT_ALIGN == 0


@pytest.mark.parametrize("size", [DIRECT_MIN, DIRECT_MIN + 1, 1 << 20, (1 << 20) + 4095, (4 << 20) + 34])
def test_direct_writes_round_trip_every_tail_length(store: LocalStore, size: int) -> None:
    data = os.urandom(size)
    store.put_deferred("chunks/ab/direct", _fill(store, data))
    store.commit()
    assert store.get("chunks/ab/direct") == data
    assert not list((store.root / "chunks" / "ab").glob(".tmp-*"))


def test_direct_writes_leave_the_page_cache_alone(store: LocalStore, tmp_path: Path) -> None:
    data = os.urandom(2 << 20)  # a whole number of blocks: nothing goes through the cache
    store.put_deferred("chunks/cd/direct", _fill(store, data))
    store.put("chunks/cd/cached", data)  # a plain put writes through the page cache
    store.commit()
    direct_cached, pages = cached_pages(store.root / "chunks/cd/direct")
    cached_cached, _ = cached_pages(store.root / "chunks/cd/cached")
    assert direct_cached == 0 and cached_cached == pages


def test_small_objects_are_written_through_the_cache(store: LocalStore) -> None:
    assert store.write_buffer(DIRECT_MIN - 1) is None


def test_a_misaligned_buffer_falls_back_to_a_cached_write(store: LocalStore) -> None:
    data = os.urandom(1 << 20)
    buf = store.write_buffer(len(data) + 1)
    buf[1 : len(data) + 1] = data
    store.put_deferred("chunks/ef/odd", buf[1 : len(data) + 1])  # the kernel refuses it: EINVAL
    store.commit()
    assert store.get("chunks/ef/odd") == data
    assert store.write_buffer(1 << 20) is None  # and the store stops trying


def test_direct_io_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEAWALL_DIRECT_IO", "0")
    assert LocalStore(tmp_path / "v", create=True).write_buffer(1 << 20) is None


def test_vault_chunks_round_trip_through_direct_io(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'vault'}"
    init_vault(url, PASSPHRASE, scrypt=FAST_SCRYPT)
    vault: Vault = open_vault(url, PASSPHRASE)
    payloads = [os.urandom(1 << 20), b"compressible text line\n" * 50_000, os.urandom(300_000), b"tiny"]
    ids = [vault.put_chunk(p)[0] for p in payloads]
    vault.commit_chunks()
    reopened = open_vault(url, PASSPHRASE)
    assert [reopened.get_chunk(i) for i in ids] == payloads


def test_a_small_commit_syncs_its_own_files_and_directories_not_the_file_system(
        store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spies on the real calls: `syncfs` would also write back every other process's dirty pages."""
    import seawall.stores.local as local

    synced: list[str] = []
    whole: list[Path] = []
    real_fsync, real_syncfs = local.fsync_path, local.syncfs
    monkeypatch.setattr(local, "fsync_path", lambda path, *a, **k: (synced.append(path), real_fsync(path, *a, **k)))
    monkeypatch.setattr(local, "syncfs", lambda path: (whole.append(path), real_syncfs(path)))
    data = os.urandom(1 << 20)
    store.put_deferred("chunks/ab/one", _fill(store, data))
    store.put_deferred("chunks/cd/two", b"small, through the cache")
    tmps = [tmp for tmp, _ in store._deferred]
    store.commit()
    root = str(store.root)
    assert whole == [] and synced[:2] == tmps  # each file's content, before any rename
    # then the names: both object directories, and the entries of the directories made for them
    assert sorted(synced[2:]) == sorted([f"{root}/chunks/ab", f"{root}/chunks/cd", f"{root}/chunks", root])
    assert store.get("chunks/ab/one") == data
    synced.clear()
    for i in range(local.SYNC_EACH_MAX + 1):
        store.put_deferred(f"chunks/ab/{i}", b"x")
    store.commit()
    assert synced == [] and len(whole) == 2  # a large batch: the whole file system, before and after
    assert store.get(f"chunks/ab/{local.SYNC_EACH_MAX}") == b"x"


def test_early_writeback_is_for_page_cache_writes_only(store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Direct writes leave nothing of ours to write back: an early `syncfs` would only write back
    other processes' dirty pages (and slow the commit that follows it)."""
    import seawall.stores.local as local

    monkeypatch.setattr(local, "WRITEBACK_EVERY", 1 << 20)
    store.put_deferred("chunks/ab/direct", _fill(store, os.urandom(2 << 20)))
    assert store._writeback is None
    store.put_deferred("chunks/ab/cached", os.urandom(2 << 20))
    assert store._writeback is not None
    store._writeback.join()
    store.commit()


@pytest.mark.parametrize("how", ["put", "put_if_absent"])
def test_a_synchronous_write_into_new_directories_makes_their_entries_durable(
        store: LocalStore, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """`wal-push` acknowledges a segment after `put_if_absent` returns: the directories made for the
    first segment of a cluster (`wal/<sysid>/`) must be durable in their parents by then, or a crash
    could lose a segment PostgreSQL has already recycled."""
    import seawall.stores.local as local

    synced: list[str] = []
    real_fsync = local.fsync_path
    monkeypatch.setattr(local, "fsync_path", lambda path, *a, **k: (synced.append(path), real_fsync(path, *a, **k)))
    root = str(store.root)
    getattr(store, how)("wal/123/000000010000000000000001", b"segment")
    dirs = [p for p in synced if os.path.isdir(p)]
    assert sorted(dirs) == sorted([f"{root}/wal/123", f"{root}/wal", root])
    synced.clear()
    getattr(store, how)("wal/123/000000010000000000000002", b"segment")  # the directories exist now
    assert [p for p in synced if os.path.isdir(p)] == [f"{root}/wal/123"]
