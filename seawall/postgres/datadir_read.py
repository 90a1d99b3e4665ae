"""Reading a data directory's files into the vault: parallel, page-checked, incremental.

Files are cut at fixed 1 MiB boundaries (128 pages), not by content: relation files change page by
page, so fixed blocks line up with what changes, and a block can be reused from the previous
backup without being hashed (below). No whole-file hash is kept: every chunk id is a keyed BLAKE3
of its plaintext, checked when it is read back, and the manifest that orders them is authenticated.

Per file, in this order (the first rule that applies):

1. **Unchanged file** (same size, mtime and inode as in the previous backup, whose copy of it was
   older than that backup's start by `MTIME_MARGIN_NS`): its chunk list is reused and the file is
   not opened at all. The margin covers file timestamps' granularity (a kernel tick) and a write
   in the same tick as the previous read, the case size + mtime cannot see (pgBackRest's reason
   for its own timestamp margin).
2. **Block-level reuse** for the main and vm forks of relations: a 1 MiB block whose pages all
   carry an LSN older than the previous backup's start LSN (and not zero: a new page has none) was
   not changed since before the previous backup read it, so that backup's chunk for the block is
   reused, and not hashed, compressed or stored. With the C library (`pgpages_native`) only the
   pages' LSNs are read (8 bytes a page, one call per block, GIL released); the block is read whole
   only when the test fails. Without it the block is read whole and its LSNs tested in Python. The
   previous backup must be of the same cluster, timeline and data directory (see
   `datadir_backup.choose_parent`), so its LSNs and ours are on one WAL history.
3. **Page-level patches** for the blocks of rule 2 that changed: when at most 7/8 of a block's pages
   changed since its base (the last whole copy), only those pages are stored, as a patch over the
   base (`seawall.postgres.pagepatch`, which says why and how).
4. Everything else is read, page-checked and stored.

Page checks (`seawall.postgres.pgpages`): with data checksums on, every relation file's pages older
than the backup's start LSN are verified as they are read; a failing page is read once more (a torn
read of a page being written is not corruption) and, still failing, reported by file, relation and
block. The backup goes on (pgBackRest warns too): the copy holds what the server holds, and
failing would leave no backup at all of a cluster that is still running on the damaged page.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from seawall.manifest import ChunkRef
from seawall.postgres import pagepatch, pgpages, pgpages_native
from seawall.postgres.datadir import Item, block_level, is_db_dir, relation_fork
from seawall.sources.tree import Entry
from seawall.streams import ChunkWriter

BLOCK = pagepatch.BLOCK
PAGES_PER_SEGMENT = (1 << 30) // pgpages.PAGE  # RELSEG_SIZE: a relation fork is cut into 1 GiB files
MTIME_MARGIN_NS = 1_000_000_000
PART = 64 * BLOCK  # files larger than this are read by several threads, a part each
Progress = Callable[[int], None]


@dataclass
class ReadPlan:
    """What the previous backup offers and how this one checks pages."""

    start_lsn: int  # this backup's start LSN: pages at or after it are not checked
    checksums: bool  # the cluster has data checksums
    parent_start_lsn: int = 0  # 0: no block-level reuse
    parent_scan_ns: int = 0  # 0: no file-level reuse
    full: bool = False  # read every file, reuse nothing


@dataclass
class ReadCounters:
    files_read: int = 0
    files_unchanged: int = 0
    bytes_read: int = 0
    bytes_reused: int = 0  # inside files that were read: blocks taken from the previous backup
    blocks_reused: int = 0
    blocks_patched: int = 0  # changed blocks stored as page patches (rule 3)
    pages_patched: int = 0
    pages_checked: int = 0
    bad_pages: list[dict] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)


def entry_for(item: Item) -> Entry:
    st = item.st
    kind = "d" if stat.S_ISDIR(st.st_mode) else "l" if stat.S_ISLNK(st.st_mode) else "f"
    entry = Entry(path=item.path, type=kind, mode=stat.S_IMODE(st.st_mode), mtime_ns=st.st_mtime_ns,
                  uid=st.st_uid, gid=st.st_gid, inode=st.st_ino)
    if kind == "f":
        entry.size = st.st_size
    elif kind == "l":
        entry.target = os.readlink(item.full)
    return entry


def unchanged(entry: Entry, prev: Entry | None, plan: ReadPlan, known: set[str]) -> bool:
    """Rule 1 above: the previous backup's copy of this file can be reused without reading it."""
    if plan.full or not plan.parent_scan_ns or prev is None or prev.type != "f":
        return False
    return ((entry.size, entry.mtime_ns, entry.inode) == (prev.size, prev.mtime_ns, prev.inode)
            and prev.mtime_ns < plan.parent_scan_ns - MTIME_MARGIN_NS
            and all(i in known for i in prev.stored_ids()))


@dataclass
class Part:
    """What reading part of a file gives: its chunk refs, and the page patches among them."""

    chunks: list[ChunkRef]
    patches: dict[str, list[str]]


class FileReader:
    """Reads files on `jobs` threads into a ChunkWriter (see the module docstring for the rules)."""

    def __init__(self, writer: ChunkWriter, plan: ReadPlan, *, jobs: int, progress: Progress | None):
        self.writer, self.plan, self.progress = writer, plan, progress
        self.counters = ReadCounters()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max(1, jobs), thread_name_prefix="seawall-pgread")
        self._known = writer.vault.known_chunks()

    def __enter__(self) -> FileReader:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.writer.cancel()
        self._pool.shutdown(wait=True, cancel_futures=exc_type is not None)

    def read_all(self, jobs: list[tuple[str, Item, Entry, Entry | None]]) -> None:
        """Read every (root, item, entry, previous entry) job, largest files first; fills the entries.

        A file larger than `PART` is read as parts of `PART` bytes by several threads at once (one
        big table must not leave the other cores idle); its chunk list is the parts' in order.
        """
        tasks = []
        for root, item, entry, prev in jobs:
            if unchanged(entry, prev, self.plan, self._known):
                entry.chunks, entry.patches = prev.chunks, prev.patches
                self.counters.files_unchanged += 1
                if self.progress:
                    self.progress(entry.size)
                continue
            parts: list[Part | None] = [None] * max(1, -(-entry.size // PART))
            tasks += [(entry.size, k, root, item, entry, prev, parts) for k in range(len(parts))]
        tasks.sort(key=lambda t: (-t[0], t[1]))  # big files first: the last task to finish is a small one
        futures = [self._pool.submit(self._read_part, *t[1:]) for t in tasks]
        for fut in futures:
            fut.result()
        for _, k, _, _, entry, _, parts in tasks:
            if k == 0 and entry.type == "f":
                entry.chunks = [c for part in parts for c in (part.chunks if part else [])]
                entry.size = sum(c[1] for c in entry.chunks)
                patches = {b: v for part in parts if part for b, v in part.patches.items()}
                entry.patches = patches or None

    def _buffer(self) -> bytearray:
        buf = getattr(self._local, "buf", None)
        if buf is None:
            buf = self._local.buf = bytearray(BLOCK)
        return buf

    def _read_part(self, k: int, root: str, item: Item, entry: Entry, prev: Entry | None,
                   parts: list[Part | None]) -> None:
        try:
            fd = open_file(item.full)
        except FileNotFoundError:  # dropped or truncated away meanwhile: WAL replay recreates or drops it
            with self._lock:
                if entry.type != "gone":
                    entry.type = "gone"
                    self.counters.vanished.append(f"{root}:{item.path}")
            return
        try:
            last = k == len(parts) - 1
            parts[k] = self._read_blocks(fd, root, item, prev, k * PART, None if last else PART)
            after = os.fstat(fd)
        finally:
            os.close(fd)
        with self._lock:
            entry.mtime_ns = min(entry.mtime_ns, after.st_mtime_ns)  # changed while read: never trust it later
            self.counters.files_read += k == 0

    def _read_blocks(self, fd: int, root: str, item: Item, prev: Entry | None, start: int,
                     limit: int | None) -> Part:
        """The chunks (and page patches) of `limit` bytes from `start` (to the end of the file if None).

        A part that meets the end of the file early (the file shrank while read) is padded with
        zeros to its length, so the parts after it keep their offsets; the truncation is in the WAL,
        which recovery replays over it (pg_basebackup pads a shrunk file the same way).
        """
        view = memoryview(self._buffer())
        reuse = self._reusable(item, prev)
        check = self.plan.checksums and _is_relation(item.path)
        part = Part([], {})
        chunks = part.chunks
        offset, end = start, None if limit is None else start + limit
        reused = 0
        native = bool(reuse) and pgpages_native.available()
        while end is None or offset < end:
            index = offset // BLOCK
            if native and self._pages_older(fd, reuse, index, offset):  # the LSNs read, not the block
                n = reuse[index][1]
                chunks.append(self._reused(prev, reuse[index], part))
                reused += n
                offset += n
                if self.progress:
                    self.progress(n)
                if n < BLOCK:
                    break
                continue
            n = _pread_full(fd, view, offset)
            if n < BLOCK and end is not None and offset + n < end:
                view[n:] = bytes(BLOCK - n)  # shrunk while read: pad (see above)
                n = BLOCK
            if not n:
                break
            piece = view[:n]
            if reuse and not native and self._block_unchanged(piece, reuse, index):
                chunks.append(self._reused(prev, reuse[index], part))
                reused += n
            else:
                bad = self._check_pages(fd, piece, offset, root, item.path) if check else []
                chunks.append(self._store(piece, prev, reuse, index, part))
                for record in bad:  # the chunk holding the bad page: later backups that reuse it say so too
                    record["chunk"] = chunks[-1][0]
            offset += n
            if self.progress:
                self.progress(n)
            if n < BLOCK:
                break
        with self._lock:
            c = self.counters
            c.bytes_read += offset - start
            c.bytes_reused += reused
            c.blocks_reused += -(-reused // BLOCK)
        return part

    @staticmethod
    def _reused(prev: Entry | None, ref: ChunkRef, part: Part) -> ChunkRef:
        """The previous backup's block, unchanged: its ref, and its patch record if it was patched."""
        if prev is not None and prev.patches and ref[0] in prev.patches:
            part.patches[ref[0]] = prev.patches[ref[0]]
        return ref

    def _store(self, piece: memoryview, prev: Entry | None, reuse: list[ChunkRef] | None, index: int,
               part: Part) -> ChunkRef:
        """Store a changed block: as a page patch over its base (rule 3) when that pays, else whole."""
        if not reuse or index >= len(reuse) or len(piece) != BLOCK or reuse[index][1] != BLOCK:
            return self.writer.put_piece(piece)
        ref = reuse[index]
        record = prev.patches.get(ref[0]) if prev is not None and prev.patches else None
        base_id, bits = (pagepatch.decode(record)[::2] if record else (ref[0], 0))
        bits |= pagepatch.changed_pages(piece, self.plan.parent_start_lsn)
        count = bits.bit_count()
        block_id = self.writer.vault.keyring.chunk_id(piece)
        if not 0 < count <= pagepatch.MAX_PAGES or block_id in self._known:
            return self.writer.put_piece(piece, block_id)
        patch_id = self.writer.put_piece(pagepatch.make_patch(piece, bits))[0]
        part.patches[block_id] = pagepatch.encode(base_id, patch_id, bits)
        with self._lock:
            self.counters.blocks_patched += 1
            self.counters.pages_patched += count
        return block_id, len(piece)

    def _reusable(self, item: Item, prev: Entry | None) -> list[ChunkRef] | None:
        """The previous copy's chunks, when blocks of this file may be reused (rule 2)."""
        if self.plan.full or not self.plan.parent_start_lsn or prev is None or prev.type != "f":
            return None
        if not block_level(item.path) or not prev.chunks:
            return None
        sizes = [c[1] for c in prev.chunks]
        if any(s != BLOCK for s in sizes[:-1]) or not all(i in self._known for i in prev.stored_ids()):
            return None  # not cut at our block boundaries (another method), or chunks gone
        return prev.chunks

    def _pages_older(self, fd: int, prev_chunks: list[ChunkRef], index: int, offset: int) -> bool:
        """`_block_unchanged` from the pages' LSNs alone (the C library): the same rule, the same sizes."""
        if index >= len(prev_chunks):
            return False
        size = prev_chunks[index][1]  # a short block was the file's last: the file must end there again
        return pgpages_native.pages_older(fd, offset, size, self.plan.parent_start_lsn, at_end=size < BLOCK)

    def _block_unchanged(self, piece: memoryview, prev_chunks: list[ChunkRef], index: int) -> bool:
        if index >= len(prev_chunks) or prev_chunks[index][1] != len(piece) or len(piece) % pgpages.PAGE:
            return False
        high, low = pgpages.max_lsn(piece)
        return low > 0 and high < self.plan.parent_start_lsn

    def _check_pages(self, fd: int, piece: memoryview, offset: int, root: str, path: str) -> list[dict]:
        """Verify the pages of one block; returns the records of the pages that failed twice."""
        first = _first_block(path, offset)
        bad = pgpages.bad_pages(piece, first, self.plan.start_lsn)
        with self._lock:
            self.counters.pages_checked += len(piece) // pgpages.PAGE
        records = []
        for block in bad:
            page_off = offset + (block - first) * pgpages.PAGE
            again = os.pread(fd, pgpages.PAGE, page_off)  # a torn read of a page being written is no fault
            if len(again) == pgpages.PAGE and not pgpages.bad_pages(again, block, self.plan.start_lsn):
                continue
            records.append(self._report(root, path, block, again))
        return records

    def _report(self, root: str, path: str, block: int, page: bytes) -> dict:
        found, expected = pgpages.page_checksum(page, block) if len(page) == pgpages.PAGE else (None, None)
        record = {"root": root, "file": path, "block": block, "checksum_found": found, "checksum_expected": expected}
        with self._lock:
            self.counters.bad_pages.append(record)
        return record


def open_file(path: str) -> int:
    """Open a data file for reading (one place, so tests can count what a backup opens)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)  # larger read-ahead when it comes from disk
    return fd


def _is_relation(path: str) -> bool:
    head, _, name = path.rpartition("/")
    return relation_fork(name) is not None and is_db_dir(head)


def _first_block(path: str, offset: int) -> int:
    """Block number (within its fork) of the page at `offset` of this segment file."""
    fork = relation_fork(path.rpartition("/")[2])
    segment = fork[2] if fork else 0
    return segment * PAGES_PER_SEGMENT + offset // pgpages.PAGE


def _pread_full(fd: int, view: memoryview, offset: int) -> int:
    """Fill `view` from `offset` (short only at end of file); returns the bytes read."""
    got = 0
    while got < len(view):
        n = os.preadv(fd, [view[got:]], offset + got)
        if not n:
            break
        got += n
    return got
