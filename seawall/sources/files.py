"""Local file trees: walk, incremental backup into a vault, and restore with metadata.

Backs up regular files, directories (empty ones too), symlinks, modes, mtimes and ownership, and
(`seawall.sources.fidelity`) hard links, extended attributes and ACLs, holes, fifos and devices.
A file whose size, mtime and inode match the previous backup is not read again: its chunk list is
reused. Files that cannot be read, or that change while being read, are reported per file; the
backup goes on and its stats say which files were skipped or inconsistent.
"""

from __future__ import annotations

import errno
import os
import queue
import stat
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from seawall.errors import PermanentError
from seawall.lifecycle import recording
from seawall.manifest import BackupStats, BackupStatus, Manifest, StreamRef, new_manifest
from seawall.sources import fidelity
from seawall.sources.files_restore import check_restore_target, restore_tree
from seawall.sources.files_restore import link as _link
from seawall.sources.files_restore import set_meta as _set_meta
from seawall.sources.paths import check_source
from seawall.sources.tree import TREE_STREAM, Entry, PreviousIndex, Tally, count_and_reuse, iter_entries, uncount
from seawall.stream_reader import cpu_capped
from seawall.streams import ChunkReader, ChunkWriter
from seawall.vault import Vault

# The restore lives in seawall.sources.files_restore; its names stay importable from here, and so do
# the helpers delta restores share (seawall.sources.delta).
__all__ = ["TREE_STREAM", "_FilePool", "_link", "_restore_file", "_set_meta", "backup_tree", "check_restore_target",
           "iter_tree", "restore_tree", "tree_size", "walk"]

Progress = Callable[[int], None]
# Files up to this size are read by the walking thread (see _OrderedReads): below it a file's zstd,
# AES and BLAKE3 work is too short to pay for handing it to another thread under the GIL.
INLINE_MAX = 128 << 10


@dataclass(slots=True)
class WalkItem:
    path: str  # relative, '/'-separated; '.' is the root
    full: str
    st: os.stat_result


def walk(root: Path, skipped: list[str]) -> Iterator[WalkItem]:
    """Depth-first, children sorted by name; unreadable directories are reported in `skipped`."""
    yield WalkItem(".", str(root), os.lstat(root))
    yield from _walk_dir(str(root), "", skipped)


def _walk_dir(dir_path: str, rel: str, skipped: list[str]) -> Iterator[WalkItem]:
    try:
        with os.scandir(dir_path) as it:
            names = sorted(e.name for e in it)
    except OSError as exc:
        skipped.append(f"{rel or '.'}: cannot list directory ({exc.strerror})")
        return
    # Joined here rather than by os.path.join: once per file, and the walk runs on the busiest thread
    base = dir_path if dir_path.endswith("/") else dir_path + "/"
    prefix = rel + "/" if rel else ""
    for name in names:
        full = base + name
        path = prefix + name
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            continue  # vanished between listing and stat
        yield WalkItem(path, full, st)
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_dir(full, path, skipped)


def _entry(item: WalkItem, links: fidelity.Fidelity, skipped: list[str]) -> Entry | None:
    """The index entry of one walked object; None (listed in `skipped`) for a socket."""
    st = item.st
    common = {"path": item.path, "mode": stat.S_IMODE(st.st_mode), "mtime_ns": st.st_mtime_ns,
              "uid": st.st_uid, "gid": st.st_gid, "inode": st.st_ino,
              "xattrs": fidelity.read_xattrs(item.full, item.path, skipped)}
    if stat.S_ISREG(st.st_mode):
        first = links.link_target(item.path, st)
        if first is not None:
            return Entry(type="h", target=first, **common)
        return Entry(type="f", size=st.st_size, **common)
    if stat.S_ISDIR(st.st_mode):
        return Entry(type="d", **common)
    if stat.S_ISLNK(st.st_mode):
        return Entry(type="l", target=os.readlink(item.full), **common)
    entry = fidelity.special_entry(item.path, st, common)
    if entry is None:
        skipped.append(f"{item.path}: a socket is not kept (its server creates it again)")
    return entry


def _read_file(writer: ChunkWriter, item: WalkItem, entry: Entry, stats_skipped: list[str],
               progress: Progress | None) -> bool:
    """Chunk one file into the vault; returns False if it had to be skipped."""
    try:
        fd = os.open(item.full, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        stats_skipped.append(f"{item.path}: {exc.strerror}")
        return False
    try:  # the fd itself, not os.fdopen: a file object costs an fstat and a GIL hand-off per file
        st = item.st
        if st.st_blocks * 512 < st.st_size:  # fewer blocks than bytes: it has holes
            entry.holes = fidelity.find_holes(fd, st.st_size)
            size, entry.hash, entry.chunks = writer.write_chunks(_FdReader(fd), progress)
        elif st.st_size <= INLINE_MAX and len(data := os.read(fd, st.st_size + 1)) == st.st_size:
            # Read whole, as stat said (a shorter read of a regular file is its end): one chunk,
            # no cutting (bench/PACKS.md). Grown or shrunk meanwhile: read again as any file.
            size, entry.hash, entry.chunks = writer.write_small(data, progress)
        else:
            if st.st_size <= INLINE_MAX:
                os.lseek(fd, 0, os.SEEK_SET)
            size, entry.hash, entry.chunks = writer.write_chunks(_FdReader(fd), progress)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if size != entry.size or after.st_mtime_ns != entry.mtime_ns:
        stats_skipped.append(f"{item.path}: changed while being read (backed up as read)")
        entry.size, entry.mtime_ns = size, after.st_mtime_ns
    return True


class _FdReader:
    __slots__ = ("fd",)

    def __init__(self, fd: int):
        self.fd = fd

    def readinto(self, view: memoryview) -> int:
        return os.readv(self.fd, (view,))


def tree_size(root: str | os.PathLike) -> int:
    """Bytes of the regular files under `root`, by stat only (for a progress bar's total); what
    cannot be listed counts 0 here, the backup reports it."""
    total, todo = 0, [os.fspath(root)]
    while todo:
        try:
            with os.scandir(todo.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            todo.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def backup_tree(vault: Vault, root: str | os.PathLike, dataset: str, *, backup_id: str | None = None,
                parent: Manifest | None = None, progress: Progress | None = None,
                workers: int = 3, readers: int = 2) -> Manifest:
    """Back up the tree at `root` as a new backup of `dataset`; returns the DONE manifest.

    Small files are read, cut, compressed, encrypted and sealed by the walking thread itself (see
    `_OrderedReads`). Larger ones: on a local store, and on one that uploads packs in the background
    (S3, `background_puts`), `workers` threads take whole files and seal them into packs; on a local
    store no more of them than cores: with packs a thread waits for the disk once per 16 MiB pack, and
    a third reader on 2 cores only contended for the GIL with the walking thread (1 GiB mixed tree,
    dev A/B, 4 alternating rounds: 2.17 -> 2.08 s, 4.00 -> 3.80 CPU-s). On other stores (SFTP)
    `readers` threads read and cut them and `workers` threads compress, encrypt and upload their new
    chunks, so that uploads overlap.
    """
    in_caller = bool(vault.store.batch_bytes) or vault.store.background_puts
    source = check_source(root)
    manifest = new_manifest(dataset, "files", source={"path": str(source), "host_path": str(source)})
    if backup_id:
        manifest.backup_id = backup_id
    manifest.parent = parent.backup_id if parent else None
    with recording(vault, manifest) as phase:
        phase("reading previous index")
        previous = PreviousIndex(_previous_entries(vault, parent))
        phase("uploading")
        manifest.transition(BackupStatus.UPLOADING)
        stats, tally = manifest.stats, Tally()
        known = vault.known_chunks(refresh=True)
        with ChunkWriter(vault, workers=workers, seal_in_caller=in_caller) as writer, \
                tempfile.SpooledTemporaryFile(8 << 20) as index, \
                _OrderedReads(writer, cpu_capped(vault, workers) if in_caller else readers, stats, tally, index,
                              progress) as reads:
            links = fidelity.Fidelity()
            try:
                for item in walk(source, stats.skipped):
                    entry = _entry(item, links, stats.skipped)
                    if entry is None:
                        continue
                    if entry.type == "f" and not count_and_reuse(entry, previous, known, tally, progress):
                        reads.add(entry, item)
                    else:
                        reads.add(entry, None)
                reads.drain()
            finally:
                tally.add_to(stats)
            stats.change_stats().files_deleted = previous.finish()
            index.seek(0)
            phase("writing index")
            tree = writer.write(index, TREE_STREAM, kind="tree")
            writer.fill_stats(stats)
        manifest.streams = [tree]
        stats.chunks_total += len(tree.chunks)
    return manifest


class _OrderedReads:
    """Files read on several threads, their index lines written in walk order.

    Small files (up to `INLINE_MAX`) are read, cut, hashed and sealed by the walking thread itself.
    Handed to reading threads, each was a few syscalls and small C calls that each let go of the
    GIL: with three readers and the walker contending for it, a tree of 1-16 KiB files took 1.5x the
    wall and 1.8x the CPU of the walker doing it all alone (30,000 files, S3 and local alike; the
    lost time was GIL hand-offs and futex wake-ups, 3 s of system time). Larger files go to the
    reading threads, whose zstd, AES and BLAKE3 work runs without the GIL on the other cores.
    At most `window` entries wait for their turn, so memory stays bounded (an entry is its index
    line and chunk list, not data). The window is wide so that a thread on a large file does not
    hold the others up: with 32 entries, the other threads ran out of small files and waited.
    Plain threads and two C queues, not an executor: a Future per file (its Condition, locks and
    callbacks) cost the walking thread more GIL time than the walk itself.
    """

    def __init__(self, writer: ChunkWriter, threads: int, stats: BackupStats, tally: Tally, index: BinaryIO,
                 progress: Progress | None, window: int = 1024):
        self._writer, self._stats, self._index, self._progress = writer, stats, index, progress
        self._tally = tally  # the per-file counts, added to `stats` by the caller
        self._todo: queue.SimpleQueue[_Read | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[None] = queue.SimpleQueue()  # one token per finished read
        self._pending: deque[_Read] = deque()
        self._window = window
        self._stop = False
        self._threads = [threading.Thread(target=self._work, name=f"seawall-read-{n}", daemon=True)
                         for n in range(max(1, threads))]
        for t in self._threads:
            t.start()

    def __enter__(self) -> _OrderedReads:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        # On failure, queued reads are dropped: the backup is failing and will not be listed DONE.
        self._stop = exc_type is not None
        if self._stop:  # readers in the middle of a file stop at their next chunk
            self._writer.cancel()
        for _ in self._threads:
            self._todo.put(None)
        for t in self._threads:
            t.join()

    def _work(self) -> None:
        while (read := self._todo.get()) is not None:
            if not self._stop:
                try:
                    read.result = self._read(read)
                except BaseException as exc:  # handed to the walking thread, which raises it
                    read.result = exc
            self._done.put(None)

    def _read(self, read: _Read) -> bool:
        return _read_file(self._writer, read.item, read.entry, self._stats.skipped,  # type: ignore[arg-type]
                          self._progress)

    def add(self, entry: Entry, item: WalkItem | None) -> None:
        """Queue `entry`; `item` is the file to read, None when the entry needs no reading."""
        read = _Read(entry, item, None if item is not None else True)
        if item is not None and item.st.st_size <= INLINE_MAX:  # small: read here, see the class docstring
            read.result = self._read(read)
        elif item is not None:
            self._todo.put(read)
        self._pending.append(read)
        while self._pending and (len(self._pending) > self._window or self._pending[0].result is not None):
            self._emit(self._pending.popleft())

    def drain(self) -> None:
        while self._pending:
            self._emit(self._pending.popleft())

    def _emit(self, read: _Read) -> None:
        while read.result is None:
            self._done.get()  # wait for some read to finish, then look again
        if isinstance(read.result, BaseException):
            raise read.result
        entry = read.entry
        if read.item is not None:
            if not read.result:  # unreadable or vanished: reported in stats.skipped, not counted
                uncount(entry, self._tally)
                return
            self._tally.bytes_read += entry.size
        if entry.type == "f":
            self._tally.chunks_total += len(entry.chunks)
        self._index.write(entry.to_line())


@dataclass(slots=True)
class _Read:
    entry: Entry
    item: WalkItem | None
    result: bool | BaseException | None  # None until read (True at once when there is nothing to read)


def _previous_entries(vault: Vault, parent: Manifest | None) -> Iterator[Entry]:
    if parent is None:
        return
    try:
        ref = parent.stream(TREE_STREAM)
    except KeyError:
        return
    with ChunkReader(vault) as reader:
        yield from iter_entries(reader.iter_stream(ref))


def iter_tree(vault: Vault, manifest: Manifest, reader: ChunkReader) -> Iterator[Entry]:
    ref: StreamRef = manifest.stream(TREE_STREAM)
    yield from iter_entries(reader.iter_stream(ref))


# ---- restore: seawall.sources.files_restore; the per-file path below serves delta restores ----------


class _FilePool:
    """A bounded pool of file restores; the first failure stops new work and is re-raised.

    Finished restores are counted, not kept: a finished Future still costs ~1.8 KB, so a list of
    them grew with the file count (85 MB for a 10 GB tree of 47,000 files; bench/SCALE.md).
    """

    def __init__(self, workers: int):
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="seawall-restore")
        self._slots = threading.BoundedSemaphore(workers * 2)
        self._submitted = 0
        self._error: BaseException | None = None

    def __enter__(self) -> _FilePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, fn: Callable[..., None], *args: object) -> None:
        if self._error is not None:
            raise self._error
        self._slots.acquire()
        self._pool.submit(fn, *args).add_done_callback(self._done)
        self._submitted += 1

    def _done(self, fut: Future[None]) -> None:
        if self._error is None and not fut.cancelled() and fut.exception() is not None:
            self._error = fut.exception()
        self._slots.release()

    def wait(self) -> int:
        """Wait for every submitted restore; the number of files, or the first failure."""
        self._pool.shutdown(wait=True)
        if self._error is not None:
            raise self._error
        return self._submitted


def _restore_file(reader: ChunkReader, entry: Entry, dest: Path, progress: Progress | None) -> None:
    tmp = dest.parent / f".{dest.name}.seawall-partial"
    ref = StreamRef(name=entry.path, size=entry.size, hash=entry.hash or "", chunks=entry.chunks)
    try:
        if entry.holes is not None:
            _restore_sparse(reader.iter_stream(ref), entry, tmp, progress)
        else:
            with open(tmp, "wb") as out:
                for data in reader.iter_stream(ref):
                    out.write(data)
                    if progress:
                        progress(len(data))
        os.replace(tmp, dest)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise PermanentError(f"no space left writing {dest}", hint="free space and restore again") from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _restore_sparse(pieces: Iterator[bytes], entry: Entry, tmp: Path, progress: Progress | None) -> None:
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for n in fidelity.write_sparse(fd, pieces, entry.holes or [], entry.size):
            if progress:
                progress(n)
    finally:
        os.close(fd)
