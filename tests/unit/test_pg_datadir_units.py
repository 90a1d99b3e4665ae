"""Pure parts of the data-directory backup: the page checksum port, what a walk keeps, which
previous backup an incremental may use, and how page errors carry over to later backups."""

from __future__ import annotations

import os
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from seawall.manifest import BackupStatus, new_manifest
from seawall.postgres import pgpages, pgpages_native
from seawall.postgres.datadir import block_level, walk
from seawall.postgres.datadir_backup import carried_errors, choose_parent
from seawall.postgres.datadir_read import BLOCK, ReadPlan, unchanged
from seawall.sources.tree import Entry
from seawall.vault import init_vault

_BASE = [int(x) for x in pgpages._BASE]


def reference_checksum(page: bytes, blkno: int) -> int:
    """pg_checksum_page transcribed line by line from checksum_impl.h (scalar, slow, obvious)."""
    words = list(struct.unpack("<2048I", page[:8] + b"\0\0" + page[10:]))  # pd_checksum counts as zero
    sums = list(_BASE)

    def comp(s: int, v: int) -> int:
        tmp = s ^ v
        return ((tmp * 16777619) & 0xFFFFFFFF) ^ (tmp >> 17)

    for i in range(64):
        for j in range(32):
            sums[j] = comp(sums[j], words[i * 32 + j])
    for _ in range(2):
        for j in range(32):
            sums[j] = comp(sums[j], 0)
    result = 0
    for s in sums:
        result ^= s
    return ((result ^ blkno) % 65535) + 1


def _page(seed: int, lsn: int = 0x1_0000_0000, checksum: int | None = None, blkno: int = 0) -> bytes:
    body = bytearray(os.urandom(8192)) if seed else bytearray(8192)
    body[0:8] = struct.pack("<II", lsn >> 32, lsn & 0xFFFFFFFF)
    body[14:16] = struct.pack("<H", 4000)  # pd_upper: an initialised page
    if checksum is None:
        checksum = reference_checksum(bytes(body), blkno)
    body[8:10] = struct.pack("<H", checksum)
    return bytes(body)


# The numpy port and the C library (built by scripts/setup.sh) must agree with the reference.
IMPLS = [pytest.param(pgpages.bad_pages_numpy, id="numpy"),
         pytest.param(pgpages_native.bad_pages, id="c", marks=pytest.mark.skipif(
             not pgpages_native.available(), reason="C page checks not built (no compiler)"))]


def test_vectorised_checksum_matches_the_reference_on_random_pages() -> None:
    pages = b"".join(_page(1, blkno=7 + i) for i in range(3))
    words = pgpages.pages(pages)
    expected = [reference_checksum(pages[i * 8192:(i + 1) * 8192], 7 + i) for i in range(3)]
    assert list(pgpages.page_checksums(words, 7)) == expected
    if pgpages_native.available():
        assert pgpages_native.page_checksums(pages, 7) == expected
        assert pgpages_native.page_checksums(bytearray(pages), (1 << 32) + 7) == expected  # block numbers wrap
        assert pgpages.page_checksum(pages[8192:16384], 8) == (expected[1], expected[1])
    assert pgpages.bad_pages(pages, 7, start_lsn=1 << 62) == []


@pytest.mark.parametrize("bad_pages", IMPLS)
def test_bad_pages_names_a_flipped_byte_and_skips_new_and_recent_pages(bad_pages) -> None:
    good = _page(1, blkno=0)
    flipped = bytearray(_page(1, blkno=1))
    flipped[5000] ^= 0xFF
    recent = bytearray(_page(1, lsn=5 << 32, blkno=2))
    recent[6000] ^= 0xFF  # changed after the backup started: WAL replay rewrites it, not checked
    zero = bytes(8192)  # a new page: no checksum yet
    data = good + bytes(flipped) + bytes(recent) + zero
    assert bad_pages(data, 0, start_lsn=4 << 32) == [1]
    junk = bytearray(zero)
    junk[100] = 1  # "new" (pd_upper 0) but not all zeros: damaged
    assert bad_pages(bytes(junk), 9, start_lsn=4 << 32) == [9]
    many = bytearray(b"".join(_page(1, blkno=500 + k) for k in range(130)))  # > a block; writable buffer
    assert bad_pages(memoryview(many), 500, start_lsn=4 << 32) == []
    for k in (0, 77, 129):
        many[k * 8192 + 4000] ^= 1
    assert bad_pages(memoryview(many), 500, start_lsn=4 << 32) == [500, 577, 629]
    assert bad_pages(b"", 0, start_lsn=1) == [] and bad_pages(good[:8191], 0, start_lsn=4 << 32) == []


def test_max_lsn_reads_every_whole_page_header_without_numpy() -> None:
    lsns = [0x1_0000_0000, 7, 0xFFFF_FFFF_0000_0001, 0x2_0000_0010]
    data = b"".join(_page(1, lsn=lsn) for lsn in lsns)
    assert pgpages.max_lsn(data) == (max(lsns), min(lsns))
    assert pgpages.max_lsn(memoryview(data)[8192:3 * 8192 + 100]) == (lsns[2], lsns[1])  # partial page left out
    assert pgpages.max_lsn(data[:8191]) == (0, 0)
    vectorised = pgpages.page_lsns(pgpages.pages(data))
    assert pgpages.max_lsn(bytearray(data)) == (int(vectorised.max()), int(vectorised.min()))


def _tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_walk_keeps_what_postgresql_says_to_keep(tmp_path: Path) -> None:
    _tree(tmp_path, {
        "PG_VERSION": b"15", "global/pg_control": b"c", "global/1262": b"r", "global/pg_internal.init": b"x",
        "base/5/16384": b"heap", "base/5/pg_internal.init.4242": b"x", "base/5/16384_fsm": b"f",
        "base/5/16384.1": b"seg",
        "base/5/16390": b"unlogged", "base/5/16390_init": b"i", "base/5/16390_vm": b"v",
        "base/5/t3_16400": b"temp", "base/pgsql_tmp/pgsql_tmp123.0": b"t", "pg_wal/000000010000000000000001": b"w",
        "pg_wal/archive_status/000000010000000000000001.done": b"", "pg_replslot/s/state": b"s",
        "postmaster.pid": b"1", "postmaster.opts": b"o", "backup_label": b"old", "pg_stat_tmp/x": b"s",
        "pg_xact/0000": b"x", "postgresql.auto.conf": b"c",
    })
    os.symlink("/elsewhere", tmp_path / "pg_tblspc_link")
    (tmp_path / "pg_wal").rename(tmp_path / "wal elsewhere")
    os.symlink(tmp_path / "wal elsewhere", tmp_path / "pg_wal")  # initdb -X
    (tmp_path / "pg_tblspc").mkdir()
    os.symlink("/srv/ts", tmp_path / "pg_tblspc" / "16500")
    paths = [i.path for i in walk(str(tmp_path))]
    assert paths[-1] == "global/pg_control"  # copied last
    assert [i.st.st_mode & 0o170000 for i in walk(str(tmp_path)) if i.path == "pg_wal"] == [0o040000]  # a folder
    assert set(paths) == {".", "PG_VERSION", "base", "base/5", "base/5/16384", "base/5/16384_fsm", "base/5/16384.1",
                          "base/5/16390_init", "global", "global/1262", "global/pg_control", "pg_wal",
                          "pg_wal/archive_status", "pg_replslot", "pg_stat_tmp", "pg_xact", "pg_xact/0000",
                          "postgresql.auto.conf", "pg_tblspc", "pg_tblspc_link", "wal elsewhere",
                          "wal elsewhere/000000010000000000000001", "wal elsewhere/archive_status",
                          "wal elsewhere/archive_status/000000010000000000000001.done"}
    assert block_level("base/5/16384.1") and block_level("global/1262") and not block_level("base/5/16384_fsm")
    assert not block_level("pg_xact/0000")


def test_unchanged_needs_the_same_stat_and_an_mtime_well_before_the_previous_backup() -> None:
    scan = 10**18
    prev = Entry(path="f", type="f", mode=0o600, mtime_ns=scan - 5 * 10**9, size=10, inode=7, chunks=[("a" * 64, 10)])
    now = Entry(path="f", type="f", mode=0o600, mtime_ns=prev.mtime_ns, size=10, inode=7)
    plan = ReadPlan(start_lsn=1, checksums=True, parent_start_lsn=1, parent_scan_ns=scan)
    known = {"a" * 64}
    assert unchanged(now, prev, plan, known)
    assert not unchanged(now, prev, ReadPlan(1, True, 1, scan, full=True), known)
    assert not unchanged(now, prev, plan, set())  # its chunk is gone from the vault
    recent = Entry(**{**vars(prev), "mtime_ns": scan - 10**8})  # written 0.1 s before that backup began
    assert not unchanged(Entry(**{**vars(now), "mtime_ns": recent.mtime_ns}), recent, plan, known)
    assert not unchanged(Entry(**{**vars(now), "inode": 8}), prev, plan, known)


@pytest.fixture
def vault(tmp_path: Path):
    from seawall.crypto import ScryptParams

    return init_vault(f"file://{tmp_path / 'v'}", "pw", scrypt=ScryptParams(n=2**10))


def _done(vault, **source):
    m = new_manifest("pg", "postgres-physical", source={"method": "datadir", "system_identifier": "42",
                                                        "data_directory": "/pg", "timeline": 1,
                                                        "start_lsn": "0/1000000", "stop_lsn": "0/2000000",
                                                        **source})
    m.transition(BackupStatus.DONE)
    vault.write_manifest(m)
    return m


def test_choose_parent_only_on_the_same_cluster_history(vault) -> None:
    here = {"system_identifier": "42", "data_directory": "/pg", "timeline": 1, "start_lsn": 0x3000000}
    assert choose_parent(vault, "pg", {**here, "host": "h"}, full=False, full_every_days=7)[0] is None
    parent = _done(vault, full_read_at=datetime.now(UTC).isoformat())
    here["host"] = parent.host
    assert choose_parent(vault, "pg", here, full=False, full_every_days=7)[0].backup_id == parent.backup_id
    assert choose_parent(vault, "pg", here, full=True, full_every_days=7)[0] is None
    for key, value in (("timeline", 2), ("system_identifier", "43"), ("data_directory", "/other")):
        found, why = choose_parent(vault, "pg", {**here, key: value}, full=False, full_every_days=7)
        assert found is None and key in why
    found, why = choose_parent(vault, "pg", {**here, "start_lsn": 0x1800000}, full=False, full_every_days=7)
    assert found is None and "behind" in why
    _done(vault, full_read_at=(datetime.now(UTC) - timedelta(days=8)).isoformat())
    found, why = choose_parent(vault, "pg", here, full=False, full_every_days=7)
    assert found is None and "older than 7 days" in why


def test_page_errors_carry_over_only_while_the_damaged_chunk_is_reused(vault) -> None:
    parent = _done(vault, page_errors=[{"root": "pgdata", "file": "base/5/16384", "block": 200, "chunk": "b" * 64}])
    same = [("a" * 64, BLOCK), ("b" * 64, BLOCK)]  # block 200 is in the second 1 MiB block
    assert carried_errors(parent, [("pgdata", [Entry(path="base/5/16384", type="f", mode=0, mtime_ns=0,
                                                     chunks=same)])])
    rewritten = [("a" * 64, BLOCK), ("c" * 64, BLOCK)]
    assert not carried_errors(parent, [("pgdata", [Entry(path="base/5/16384", type="f", mode=0, mtime_ns=0,
                                                         chunks=rewritten)])])


def test_large_files_read_in_parts_by_several_threads_reassemble_exactly(vault, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from seawall.postgres import datadir_read
    from seawall.postgres.datadir import Item
    from seawall.streams import ChunkReader, ChunkWriter

    monkeypatch.setattr(datadir_read, "PART", 2 * BLOCK)
    sizes = {"big": 5 * BLOCK + 12345, "exact": 4 * BLOCK, "small": 100, "empty": 0}
    data = {name: os.urandom(n) for name, n in sizes.items()}
    jobs = []
    for name, blob in data.items():
        (tmp_path / name).write_bytes(blob)
        item = Item(name, str(tmp_path / name), os.lstat(tmp_path / name))
        jobs.append(("pgdata", item, datadir_read.entry_for(item), None))
    with ChunkWriter(vault) as writer, datadir_read.FileReader(writer, ReadPlan(1, False), jobs=3,
                                                                progress=None) as reader:
        reader.read_all(jobs)
    assert reader.counters.files_read == 4 and reader.counters.bytes_read == sum(sizes.values())
    with ChunkReader(vault) as chunks:
        for _, item, entry, _ in jobs:
            assert entry.size == sizes[item.path]
            assert b"".join(chunks.iter_chunks(entry.chunks)) == data[item.path], item.path
