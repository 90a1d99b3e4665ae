"""Bytes of memory per chunk (or per file) of the structures that grow with a vault, by tracemalloc.

The scale benchmark measures whole processes up to 10 GB; these per-item costs carry the figures to
100 GB (bench/SCALE.md). Each structure is built the way the code builds it, for N fresh ids:

    .venv/bin/python -m bench.scale_perchunk [--n 100000]
"""

from __future__ import annotations

import argparse
import secrets
import tracemalloc
from collections.abc import Callable
from typing import Any


def _ids(n: int) -> list[str]:
    return [secrets.token_hex(32) for _ in range(n)]  # chunk ids: 64 hex characters


def cost(build: Callable[[], Any], n: int) -> float:
    """Bytes per item that `build()` allocates and keeps."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = build()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return (after - before) / n


def v1_known_set(n: int) -> Any:
    """Vault v1 `known_chunks()`: a set of id strings from listing chunks/."""
    keys = [f"chunks/{c[:2]}/{c}" for c in _ids(n)]
    return {k.rsplit("/", 1)[1] for k in keys}


def copy_plan(n: int) -> Any:
    """copy_plan: dest set + source id->size + the backup's chunk list and missing list (ids read
    twice: from the listing and from the manifest/index, so two strings per id)."""
    listed = _ids(n)
    sizes = {c: 1 << 20 for c in listed}
    referenced = [str(c[:32]) + c[32:] for c in listed]  # equal, distinct objects, like parsed ids
    chunks = list(dict.fromkeys(referenced))
    dest: set[str] = set()  # a fresh destination: everything is missing
    return sizes, dest, chunks, [c for c in chunks if c not in dest]


def packs_index(n: int) -> Any:
    """Vault v2 `ChunkIndex.locations`: id -> (pack key, offset, length)."""
    from seawall.vault.index import ChunkIndex
    from seawall.vault.packs import BlobEntry

    entries, packs = [], {}
    for i, c in enumerate(_ids(n)):
        entries.append(BlobEntry(c, (i % 16) * (1 << 20) + 12345, 700_000))
        if len(entries) == 16:
            packs[f"packs/ab/{secrets.token_hex(32)}"] = entries
            entries = []
    index = ChunkIndex()
    index.add_packs(packs)
    del packs, entries
    return index


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000)
    args = ap.parse_args()
    try:
        import seawall.vault.index  # noqa: F401 (vault format v2, with packs)
        packs = True
    except ImportError:
        packs = False
    for name, fn in (("v1 known-chunks set", v1_known_set), ("copy plan", copy_plan),
                     ("v2 packs ChunkIndex", packs_index)):
        if fn is packs_index and not packs:
            print(f"{name}: not on this commit")
            continue
        print(f"{name}: {cost(lambda fn=fn: fn(args.n), args.n):.0f} bytes per chunk")


if __name__ == "__main__":
    main()
