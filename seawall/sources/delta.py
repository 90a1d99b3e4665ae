"""Delta restore: bring an existing folder to a backup's state, writing only what differs.

`restore_tree` refuses a non-empty target; `restore_tree_delta` is the one, explicit exception
(`seawall restore --delta`), shared by file trees and physical PostgreSQL backups taken from the
data directory (both store a `tree` index of `seawall.sources.tree.Entry` lines).

How a file is compared: pgBackRest's delta compares a checksum of each existing file with the one
in its manifest. We go one step finer, because every file's chunks are listed with their keyed
BLAKE3 ids: the existing file is read at the offsets and sizes of the backup's chunks, each piece
is hashed with the vault's chunk-id key, and only the chunks whose id differs are fetched and
written in place (then the file is cut to its size). A 1 GiB relation file with a few changed
pages costs a read and a hash of 1 GiB (~0.6 s per core here) and the fetch of a few chunks, not a
1 GiB download and write. Comparing at the backup's offsets is exact for files changed in place
(database pages); an insertion that shifts the rest of a file only costs more fetched chunks,
never a wrong result. `trust_mtime` (`--delta-trust-mtime`) is the documented shortcut: a file
with the backup's size and nanosecond mtime is kept unread (it is not proof: a tool that restores
mtimes after writing can fool it). A data directory restored by seawall before (full or delta)
skips most of the reading safely: `seawall.sources.delta_hints` recorded each file's inode, size,
mtime, ctime and chunks at the end of that restore, and a file whose four values are unchanged holds
those chunks (only a write sets a ctime, and none can set it back), so only the chunk lists are compared.

Safety:
- Two passes. `prune` first removes what the backup does not have, and every object whose kind
  differs from the backup's (a symbolic link where the backup has a folder or file, a file where it
  has a folder...), so the writing pass never finds anything but real folders above a path, and
  never writes through a link. Removal never leaves the root: links are unlinked, not followed
  (`shutil.rmtree` does not follow them either).
- A file with other hard links (pg_upgrade --link shares relation files between two clusters) is
  never written in place: it is rewritten under a temporary name and renamed, which breaks the link
  and leaves the other name untouched.
- A file that is written in place is inconsistent while it is written. A delta restore interrupted
  half-way leaves a folder that is neither the old nor the backup's state; running it again
  finishes the job (each step is idempotent).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import shutil
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

from seawall.errors import ConfigError
from seawall.manifest import ChunkRef, Manifest
from seawall.sources import delta_hints, fidelity
from seawall.sources.delta_hints import RestoreHints, chunk_offsets
from seawall.sources.files import TREE_STREAM, _FilePool, _link, _restore_file, _set_meta
from seawall.sources.tree import Entry, PreviousIndex, iter_entries
from seawall.streams import ChunkReader
from seawall.vault import Vault

Progress = Callable[[int], None]
_OPEN_FLAGS = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
KEEP_INDEX_BYTES = 8 << 20  # an index up to this size is parsed once for both passes (~30k files)


@dataclass
class DeltaStats:
    """What a delta restore did (`files_written` is the figure to watch: files whose bytes changed)."""

    files: int = 0  # regular files in the backup
    bytes: int = 0  # their size
    files_written: int = 0  # new files, and files where at least one chunk (or the size) differed
    files_unchanged: int = 0
    files_trusted: int = 0  # kept unread by size + mtime (trust_mtime)
    files_hinted: int = 0  # known from the last restore's hints (`seawall.sources.delta_hints`): not read
    chunks_fetched: int = 0
    bytes_fetched: int = 0
    bytes_compared: int = 0  # bytes of existing files read and hashed
    removed: int = 0  # existing paths the backup does not have (or has as another kind), removed
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


def check_delta_root(target: str | os.PathLike) -> Path:
    """The absolute root of a delta restore: a real folder (or nothing yet), never a symbolic link."""
    path = Path(target).absolute()
    if path.is_symlink():
        raise ConfigError(f"delta restore target {path} is a symbolic link",
                          hint=f"give the folder it points to ({path.resolve()})")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"delta restore target {path} is a file, not a folder", hint="pick a folder")
    return path


# ---- pass 1: remove what the backup does not have -------------------------------------------------
def _keeps(entry: Entry, de: os.DirEntry) -> bool:
    """Whether the existing object may stay for `entry` (its content is compared later). The kind
    comes from the directory entry itself (d_type): no lstat per path on file systems that fill it."""
    if entry.type == "d":
        return de.is_dir(follow_symlinks=False)
    if entry.type == "f":
        return de.is_file(follow_symlinks=False)
    if entry.type == "l":
        return de.is_symlink() and os.readlink(de.path) == entry.target
    return False  # hard links and special files are made again: cheap, and never stale


def _remove(de: os.DirEntry) -> None:
    with contextlib.suppress(FileNotFoundError):  # gone meanwhile: nothing left to remove
        shutil.rmtree(de.path) if de.is_dir(follow_symlinks=False) else os.unlink(de.path)


def prune(root: Path, entries: Iterator[Entry], stats: DeltaStats) -> None:
    """Remove from `root` every path the backup lacks or holds as another kind of object.

    `entries` come in walk order (as backups write them), so this is one merge pass over the
    existing tree and the index with bounded memory. An index out of that order only makes
    more paths look absent: they are removed here and written again, never left wrong.
    """
    if root.exists():
        _prune_dir(str(root), "", PreviousIndex(entries), stats)


def _prune_dir(full: str, rel: str, index: PreviousIndex, stats: DeltaStats) -> None:
    with os.scandir(full) as it:
        children = sorted(it, key=lambda de: de.name)
    for de in children:
        path = f"{rel}/{de.name}" if rel else de.name
        entry = index.find(path)
        if entry is not None and _keeps(entry, de):
            if entry.type == "d":
                _prune_dir(de.path, path, index, stats)
            continue
        _remove(de)
        stats.add(removed=1)


# ---- pass 2: write what differs -------------------------------------------------------------------
class _Buffers(threading.local):
    buf: bytearray | None = None

    def get(self, size: int) -> memoryview:
        if self.buf is None or len(self.buf) < size:
            self.buf = bytearray(size)
        return memoryview(self.buf)[:size]


_BUFFERS = _Buffers()


def differing_chunks(fd: int, chunks: list[ChunkRef], chunk_id: Callable[[memoryview], str],
                     ) -> tuple[list[tuple[int, ChunkRef]], int]:
    """(offset, chunk) of every chunk whose bytes at its offset in `fd` differ; and the bytes read."""
    out: list[tuple[int, ChunkRef]] = []
    offset = read = 0
    for ref in chunks:
        view = _BUFFERS.get(ref[1])
        n = os.preadv(fd, [view], offset)
        read += n
        if n != ref[1] or chunk_id(view) != ref[0]:
            out.append((offset, ref))
        offset += ref[1]
    return out, read


def sync_file(reader: ChunkReader, entry: Entry, dest: Path, stats: DeltaStats, *,
              trust_mtime: bool = False, progress: Progress | None = None,
              hints: RestoreHints | None = None) -> bool:
    """Make `dest` hold `entry`'s bytes, fetching only the chunks that differ; True if it wrote.

    What `dest` holds now is read and hashed, unless `hints` know it (untouched since the restore
    that recorded them: then only the recorded chunk list is compared with the entry's).
    """
    try:
        st = os.lstat(dest)  # pass 1 left a regular file here, or nothing
    except FileNotFoundError:
        st = None
    if st is None or st.st_nlink > 1:  # new, or shared with another name: a new inode, never in place
        _restore_file(reader, entry, dest, progress)
        stats.add(files_written=1, chunks_fetched=len(entry.chunks), bytes_fetched=entry.size)
        return True
    if trust_mtime and st.st_size == entry.size and st.st_mtime_ns == entry.mtime_ns:
        stats.add(files_trusted=1)
        return False
    known = hints.content(entry.path, st) if hints is not None else None
    if known is not None:
        missing = _not_at_offsets(known, entry.chunks)
        stats.add(files_hinted=1)
        if not missing and st.st_size == entry.size:  # nothing to write: not even opened
            stats.add(files_unchanged=1)
            if progress:
                progress(entry.size)
            return False
    fd = _open_quietly(dest)
    try:
        if known is None:
            missing, read = differing_chunks(fd, entry.chunks, reader.vault.keyring.chunk_id)
            stats.add(bytes_compared=read)
        if missing and entry.holes is not None:  # sparse: a fresh copy keeps its holes
            os.close(fd)
            fd = -1
            _restore_file(reader, entry, dest, progress)
        else:
            _write_at(fd, reader, missing)
            if st.st_size != entry.size:
                os.ftruncate(fd, entry.size)
            if missing:
                _start_writeback(fd)
    finally:
        if fd >= 0:
            os.close(fd)
    if progress:
        progress(entry.size)
    changed = bool(missing) or st.st_size != entry.size
    stats.add(files_written=int(changed), files_unchanged=int(not changed), chunks_fetched=len(missing),
              bytes_fetched=sum(ref[1] for _, ref in missing))
    return changed


def unchanged_by_hints(entry: Entry, dest: str | Path, hints: RestoreHints, stats: DeltaStats, as_root: bool,
                       progress: Progress | None, trust_mtime: bool = False) -> bool:
    """True (and counted) if `hints` show that `dest` holds `entry`'s chunks, size and metadata, untouched
    since the restore that recorded them: nothing to read, write or set. Checked on the calling thread:
    ~97% of a restored data directory's files after a 1% change, and handing each to a worker cost a
    thread hand-off and a second lstat. Anything else (`sync_file` decides) returns False."""
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        return False
    if st.st_nlink > 1 or st.st_size != entry.size or not meta_matches(dest, entry, as_root, st):
        return False
    if trust_mtime and st.st_mtime_ns == entry.mtime_ns:  # counted as `sync_file` counts it
        stats.add(files_trusted=1)
    else:
        known = hints.content(entry.path, st)
        if known is None or _not_at_offsets(known, entry.chunks):
            return False
        stats.add(files_hinted=1, files_unchanged=1)
    if progress:
        progress(entry.size)
    return True


def _not_at_offsets(known: list[ChunkRef], chunks: list[ChunkRef]) -> list[tuple[int, ChunkRef]]:
    """(offset, chunk) of each chunk of `chunks` the file holding `known` lacks at that offset."""
    have = chunk_offsets(known)
    out, offset = [], 0
    for ref in chunks:
        if have.get(offset) != (ref[0], ref[1]):
            out.append((offset, ref))
        offset += ref[1]
    return out


@functools.cache
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    fn = getattr(ctypes.CDLL(None, use_errno=True), "sync_file_range", None)
    if fn is not None:
        fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    return fn


def _start_writeback(fd: int) -> None:
    """Start writing a patched file's dirty pages to disk now (SYNC_FILE_RANGE_WRITE: asynchronous),
    while the next files are fetched: PostgreSQL fsyncs every file of the data directory when it
    starts, and would otherwise wait there for all of them at once."""
    fn = _sync_file_range()
    if fn is not None:
        fn(fd, 0, 0, 2)  # a failure only loses the head start


def _open_quietly(path: Path) -> int:
    """Open for comparing (and maybe writing) without updating the access time where we may: an
    atime update dirties the inode just like a metadata change (see `meta_matches`)."""
    try:
        return os.open(path, _OPEN_FLAGS | os.O_NOATIME)
    except PermissionError:  # O_NOATIME is for the file's owner (or root)
        return os.open(path, _OPEN_FLAGS)


def _write_at(fd: int, reader: ChunkReader, missing: list[tuple[int, ChunkRef]]) -> None:
    if not missing:
        return
    datas = reader.iter_chunks([ref for _, ref in missing])
    for (offset, _), data in zip(missing, datas, strict=True):
        view, pos = memoryview(data), 0
        while pos < len(view):
            pos += os.pwrite(fd, view[pos:], offset + pos)


def restore_tree_delta(vault: Vault, manifest: Manifest, target: str | os.PathLike, *, workers: int = 3,
                       trust_mtime: bool = False, progress: Progress | None = None,
                       skipped: list[str] | None = None, stream: str = TREE_STREAM,
                       owner: tuple[int, int] | None = None, hints: bool = False) -> DeltaStats:
    """Make the folder `target` (existing or not) hold exactly the backup's tree; returns the counts.

    Paths the backup lacks are removed; files are compared chunk by chunk and only differing chunks
    written (see the module docstring); metadata (mode, owner as root, mtime, attributes) is set on
    everything, as `restore_tree` does. What the target refuses is appended to `skipped`.
    `stream` names the tree index (a physical backup has one per root); `owner` (uid, gid) replaces
    the recorded owners (a data directory belongs to the server OS user of this host). `hints`: use
    and record `seawall.sources.delta_hints` (data directories: nothing else writes there unseen).
    """
    skipped = [] if skipped is None else skipped
    root = check_delta_root(target)
    stats = DeltaStats()

    def entries(reader: ChunkReader) -> Iterator[Entry]:
        for entry in iter_entries(reader.iter_stream(manifest.stream(stream))):
            if owner is not None:
                entry.uid, entry.gid = owner
            yield entry

    known = delta_hints.load(vault, root) if hints else None
    if hints:
        delta_hints.forget(vault, root)  # before anything changes: an interrupted restore leaves none
    recorder = delta_hints.Recorder()
    # Both passes need the index. A small one (a data directory's: ~1,300 entries, ~0.3 MB) is read,
    # decrypted and parsed once and kept for the second pass; a large one is streamed twice, so
    # memory stays bounded whatever the tree.
    listed: list[Entry] | None = None
    with ChunkReader(vault, workers=1) as tree_reader:
        if manifest.stream(stream).size <= KEEP_INDEX_BYTES:
            listed = list(entries(tree_reader))
        prune(root, iter(listed) if listed is not None else entries(tree_reader), stats)
    root.mkdir(parents=True, exist_ok=True)
    dirs: list[Entry] = []
    links: list[Entry] = []
    as_root = os.geteuid() == 0
    base, files, size = str(root), 0, 0
    with ChunkReader(vault, workers=workers) as reader, ChunkReader(vault, workers=1) as tree_reader, \
            _FilePool(workers) as pool:
        for entry in listed if listed is not None else entries(tree_reader):
            if entry.type == "f":  # most entries: a str path (a Path per file cost ~20 ms per 1,300 files)
                files, size = files + 1, size + entry.size
                if hints:
                    recorder.add(entry.path, entry.chunks)
                path = os.path.join(base, entry.path)
                reader.add_patches(entry.patches)
                if known is None or not unchanged_by_hints(entry, path, known, stats, as_root, progress, trust_mtime):
                    pool.submit(_sync_with_meta, reader, entry, Path(path), stats, trust_mtime, progress, as_root,
                                skipped, known)
                continue
            dest = root if entry.path == "." else root / entry.path
            if entry.type == "d":
                dest.mkdir(exist_ok=True)  # pass 1 left a real folder here, or nothing
                dirs.append(entry)
            elif entry.type == "l":
                if not os.path.lexists(dest):  # pass 1 kept only a link with the same target
                    os.symlink(entry.target, dest)
                if not meta_matches(dest, entry, as_root):
                    _set_meta(dest, entry, as_root, skipped, follow=False)
            elif entry.type == "h":
                links.append(entry)
            elif fidelity.make_special(str(dest), entry, as_root, skipped):
                _set_meta(dest, entry, as_root, skipped)
        pool.wait()
    stats.add(files=files, bytes=size)
    for entry in links:
        _link(root, entry, skipped)
    for entry in reversed(dirs):  # children first, so writing into a folder doesn't bump its mtime later
        dest = root if entry.path == "." else root / entry.path
        if not meta_matches(dest, entry, as_root):
            _set_meta(dest, entry, as_root, skipped)
    if hints:
        recorder.save(vault, root)
    return stats


def _sync_with_meta(reader: ChunkReader, entry: Entry, dest: Path, stats: DeltaStats, trust_mtime: bool,
                    progress: Progress | None, as_root: bool, skipped: list[str],
                    hints: RestoreHints | None) -> None:
    if sync_file(reader, entry, dest, stats, trust_mtime=trust_mtime, progress=progress, hints=hints) \
            or not meta_matches(dest, entry, as_root):
        _set_meta(dest, entry, as_root, skipped)


def meta_matches(path: str | Path, entry: Entry, as_root: bool, st: os.stat_result | None = None) -> bool:
    """Whether `path` already has the entry's mode, owner (as root) and mtime, so nothing is set.

    Setting them anyway (chmod, chown, utime) changes nothing visible but dirties every inode: a
    delta restore of a data directory then left ~1,300 dirty inodes, and PostgreSQL's start-up
    fsync of the data directory paid one journal commit per file (5.5 s measured on this VM's
    disk, more than everything else the restore did). Extended attributes are always written.
    `st`: the path's lstat, if the caller just took it.
    """
    if entry.xattrs:
        return False
    try:
        st = st or os.lstat(path)
    except OSError:
        return False
    return (st.st_mtime_ns == entry.mtime_ns and (entry.type == "l" or stat.S_IMODE(st.st_mode) == entry.mode)
            and (not as_root or (st.st_uid, st.st_gid) == (entry.uid, entry.gid)))
