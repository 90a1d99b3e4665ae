"""The incremental backup's block-reuse test (seawall.postgres.datadir_read, rule 2): the C test
(`pgpages_native.pages_older`), which reads only the pages' LSNs, decides exactly as the Python test
on the whole block, for every way a relation file can differ from its previous copy, and reads
whole only the blocks that failed it."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from seawall.crypto import ScryptParams
from seawall.postgres import datadir_read, pgpages_native
from seawall.postgres.datadir import Item
from seawall.postgres.datadir_read import BLOCK, FileReader, ReadPlan
from seawall.streams import ChunkReader, ChunkWriter
from seawall.vault import init_vault

PAGE = 8192
PARENT = 0x5_0000_0000  # the previous backup's start LSN
OLD, NEW = PARENT - 0x1000, PARENT + 0x10
PAGES = 3 * (BLOCK // PAGE) + 5  # three whole blocks and a short last one

needs_c = pytest.mark.skipif(not pgpages_native.available(), reason="C page checks not built (no compiler)")


def _page(lsn: int) -> bytes:
    return struct.pack("<II", lsn >> 32, lsn & 0xFFFFFFFF) + os.urandom(PAGE - 8)


def _set_page(path: Path, index: int, lsn: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(index * PAGE)
        fh.write(_page(lsn))


def _truncate(size: int) -> Callable[[Path], None]:
    return lambda path: os.truncate(path, size)


def _append(pages: int) -> Callable[[Path], None]:
    def grow(path: Path) -> None:
        with open(path, "ab") as fh:
            fh.write(b"".join(_page(OLD) for _ in range(pages)))
    return grow


# name -> (change to the file after the previous backup, blocks reused by the incremental)
CHANGES = {
    "unchanged": (lambda p: None, 4),
    "page changed since": (lambda p: _set_page(p, BLOCK // PAGE + 7, NEW), 3),
    "page at the previous start": (lambda p: _set_page(p, 5, PARENT), 3),
    "new page (LSN 0)": (lambda p: _set_page(p, 2 * BLOCK // PAGE, 0), 3),
    "last page of a block changed": (lambda p: _set_page(p, BLOCK // PAGE - 1, NEW), 3),
    "short block's page changed": (lambda p: _set_page(p, PAGES - 1, NEW), 3),
    "truncated in a block": (_truncate(2 * BLOCK + 3 * PAGE), 2),
    "truncated mid-page": (_truncate(2 * BLOCK + 3 * PAGE + 100), 2),
    "truncated at a block": (_truncate(2 * BLOCK), 2),
    "short block grown": (_append(2), 3),
    "grown by whole blocks": (_append(2 * BLOCK // PAGE), 3),
    "emptied": (_truncate(0), 0),
}


@pytest.fixture
def vault(tmp_path: Path):
    return init_vault(f"file://{tmp_path / 'v'}", "pw", scrypt=ScryptParams(n=2**10))


def _read(vault, path: Path, plan: ReadPlan, prev):
    item = Item("base/5/16384", str(path), os.lstat(path))
    entry = datadir_read.entry_for(item)
    with ChunkWriter(vault) as writer, FileReader(writer, plan, jobs=2, progress=None) as reader:
        reader.read_all([("pgdata", item, entry, prev)])
    return entry, reader.counters


@pytest.mark.parametrize("impl", [pytest.param("c", marks=needs_c), "python"])
@pytest.mark.parametrize("change", list(CHANGES))
def test_reuse_decisions_match_the_whole_block_test_and_restore_the_file(
        vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, impl: str, change: str) -> None:
    path = tmp_path / "16384"
    path.write_bytes(b"".join(_page(OLD) for _ in range(PAGES)))
    prev, _ = _read(vault, path, ReadPlan(PARENT, False), None)
    mutate, reused = CHANGES[change]
    mutate(path)
    if impl == "python":
        monkeypatch.setattr(pgpages_native, "available", lambda: False)
    reads: list[int] = []
    real_pread = datadir_read._pread_full

    def pread_full(fd: int, view: memoryview, offset: int) -> int:  # the blocks read whole
        reads.append(offset)
        return real_pread(fd, view, offset)

    monkeypatch.setattr(datadir_read, "_pread_full", pread_full)

    entry, counters = _read(vault, path, ReadPlan(NEW + 1, False, parent_start_lsn=PARENT, parent_scan_ns=1), prev)

    assert counters.blocks_reused == reused
    # a whole block with one page changed is stored as that page over the previous copy (a patch)
    assert counters.blocks_patched == (change in ("page changed since", "page at the previous start",
                                                  "new page (LSN 0)", "last page of a block changed"))
    with ChunkReader(vault) as chunks:
        chunks.add_patches(entry.patches)
        assert b"".join(chunks.iter_chunks(entry.chunks)) == path.read_bytes()
    if impl == "c":  # the reused blocks were not read whole: only their LSNs were
        assert len(reads) == -(-path.stat().st_size // BLOCK) - reused + (path.stat().st_size % BLOCK == 0)
    else:
        assert len(reads) >= -(-path.stat().st_size // BLOCK)


@needs_c
def test_pages_older_reads_lsns_and_the_block_end(tmp_path: Path) -> None:
    path = tmp_path / "rel"
    path.write_bytes(_page(OLD) + _page(OLD) + _page(OLD))
    fd = os.open(path, os.O_RDONLY)
    try:
        assert pgpages_native.pages_older(fd, 0, 3 * PAGE, PARENT, at_end=True)
        assert pgpages_native.pages_older(fd, 0, 2 * PAGE, PARENT, at_end=False)
        assert not pgpages_native.pages_older(fd, 0, 2 * PAGE, PARENT, at_end=True)  # the file goes on
        assert not pgpages_native.pages_older(fd, 0, 4 * PAGE, PARENT, at_end=False)  # past the end
        assert not pgpages_native.pages_older(fd, 0, 3 * PAGE - 1, PARENT, at_end=True)  # not whole pages
        assert not pgpages_native.pages_older(fd, 0, 0, PARENT, at_end=True)
        assert not pgpages_native.pages_older(fd, 0, 3 * PAGE, OLD, at_end=True)  # at `before`: changed
        assert pgpages_native.pages_older(fd, PAGE, 2 * PAGE, OLD + 1, at_end=True)
        os.truncate(path, 3 * PAGE - 1)  # the last page is no longer whole
        assert not pgpages_native.pages_older(fd, 0, 3 * PAGE, PARENT, at_end=False)
    finally:
        os.close(fd)
    bad = os.open(tmp_path, os.O_RDONLY)  # a read that fails (a directory): no, not an exception
    try:
        assert not pgpages_native.pages_older(bad, 0, PAGE, PARENT, at_end=False)
    finally:
        os.close(bad)
