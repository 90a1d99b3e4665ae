"""Memory that must not grow with the amount of data (bench/SCALE.md measures the whole CLI).

These pin the per-item costs the scale benchmark found, with tracemalloc: cheap, exact, and
independent of what else the machine runs.
"""

from __future__ import annotations

import tracemalloc

from seawall.sources.files import _FilePool


def _noop() -> None:
    return None


def _traced_after(pool: _FilePool, n: int) -> int:
    for _ in range(n):
        pool.submit(_noop)
    return tracemalloc.get_traced_memory()[0]


def test_restore_pool_keeps_nothing_per_file():
    """A file restore, once done, leaves nothing behind (it kept its Future: ~1.8 KB per file)."""
    tracemalloc.start()
    try:
        with _FilePool(3) as pool:
            first = _traced_after(pool, 500)
            later = _traced_after(pool, 5_000)
            assert pool.wait() == 5_500
    finally:
        tracemalloc.stop()
    assert later - first < 64 << 10, f"{(later - first) / 5_000:.0f} bytes kept per restored file"


def test_copy_holds_a_bounded_number_of_pack_buffers(tmp_path, monkeypatch):
    """A copy holds at most `max_open` destination packs and no whole copy or read-back of one.

    Each of the 8 workers used to hold its own open pack, a bytes copy of it to upload and a
    whole read-back (~500 MB of a 1 GB copy, bench/SCALE.md). Scaled down here: 128 KiB chunks,
    1 MiB packs, a 2 MiB pack budget (2 packs); pack buffers are plain bytearrays, so tracemalloc
    sees them with everything else the copy allocates.
    """
    from seawall.copy import chunks as copy_chunks
    from seawall.copy.chunks import ChunkCopier
    from seawall.copy.transfer import CopySettings
    from seawall.stores.base import ObjectStore
    from seawall.stores.local import LocalStore
    from seawall.vault import Vault
    from seawall.vault.config import ChunkerParams
    from tests.unit.builders import FAST_SCRYPT, PASSPHRASE, random_bytes

    monkeypatch.setenv("SEAWALL_PACK_SIZE", str(1 << 20))
    monkeypatch.setattr(copy_chunks, "_PACK_BUDGET", 2 << 20, raising=False)
    monkeypatch.setattr(copy_chunks, "_UNIT_BYTES", 256 << 10)
    monkeypatch.setattr(LocalStore, "pack_buffer", ObjectStore.pack_buffer)  # bytearrays: traced
    chunker = ChunkerParams(min_size=16 << 10, avg_size=64 << 10, max_size=128 << 10)
    source = Vault.init(LocalStore(tmp_path / "a", create=True), PASSPHRASE, scrypt=FAST_SCRYPT, chunker=chunker)
    ids = [source.put_chunk(random_bytes(128 << 10))[0] for _ in range(128)]  # 16 MiB
    source.commit_chunks()
    dest = Vault.init(LocalStore(tmp_path / "b", create=True), PASSPHRASE, scrypt=FAST_SCRYPT,
                      chunker=chunker, keyring=source.keyring)
    tracemalloc.start()
    try:
        with ChunkCopier(source, dest, CopySettings(workers=8)) as copier:
            base = tracemalloc.get_traced_memory()[0]
            verdicts = copier.copy(ids)
            peak = tracemalloc.get_traced_memory()[1]
            packer = dest.chunks.packer()
    finally:
        tracemalloc.stop()
    assert verdicts == dict.fromkeys(ids)
    # 2 packs of ~1.3 MiB capacity, 8 read units of 256 KiB and their chunks opened (~3 MiB), one
    # read-back: 6.6 MiB measured. One pack per worker with its copy and read-back: 19.9 MiB.
    assert peak - base < 10 << 20, f"copy peaked at {(peak - base) / (1 << 20):.1f} MiB"
    assert packer.max_open == 2 and packer.packs_written >= 16
