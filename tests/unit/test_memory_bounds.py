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
