"""File trees on remote hosts over SSH: incremental backup, with a count of what was read.

The tree is listed by `seawall.sources.remote_list` (one remote `find`, or an SFTP walk). Contents
stream over SFTP with paramiko's prefetch (never `prefetch=False`: ~6 MB/s) straight into the
chunker, from `readers` connections at once (files are handed out in walk order and their index
lines written back in that order): one connection leaves both ends idle while the other works,
and small files cost a few round trips each. A file is re-stat'ed on its open handle after reading:
a size or mtime change, a vanished file and a permission error are reported per file and the backup
goes on. A dropped connection or a timeout is a RetryableError: the task retry starts again under
the same backup id and re-stores nothing the vault already has.
"""

from __future__ import annotations

import contextlib
import errno
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import paramiko

from seawall.lifecycle import recording
from seawall.manifest import BackupStats, BackupStatus, Manifest, new_manifest
from seawall.sources.exclude import Excluder
from seawall.sources.files import TREE_STREAM, iter_tree
from seawall.sources.remote_list import list_tree, mark_hard_links
from seawall.sources.tree import Entry, PreviousIndex, count_and_reuse, uncount
from seawall.ssh import RemoteSession, SshOptions, check_remote_dir, rpath, translate_ssh_errors
from seawall.streams import ChunkReader, ChunkWriter
from seawall.vault import Vault

__all__ = ["RemoteSession", "RemoteSource", "backup_remote_tree", "read_remote_file"]

Progress = Callable[[int], None]
READ_SIZE = 32768  # paramiko's SFTP request size; larger read() calls re-concatenate bytes


# ---- reading ----------------------------------------------------------------------------------


class _CountingReader:
    """`readinto` over an SFTP file, in paramiko-sized requests, counting bytes received."""

    def __init__(self, fh: paramiko.SFTPFile, session: RemoteSession):
        self.fh, self.session = fh, session

    def readinto(self, view: memoryview) -> int:
        data = self.fh.read(min(len(view), READ_SIZE))
        n = len(data)
        view[:n] = data
        self.session.bytes_read += n
        return n


def _is_file_error(exc: OSError) -> bool:
    """A per-file SFTP status (missing, denied, generic failure), as opposed to a dead link."""
    if exc.errno in (errno.ENOENT, errno.EACCES, errno.EPERM):
        return True
    return type(exc) in (OSError, IOError) and exc.errno is None and str(exc) not in ("Socket is closed", "")


def read_remote_file(session: RemoteSession, writer: ChunkWriter, root: str, entry: Entry,
                     skipped: list[str], progress: Progress | None) -> bool:
    """Chunk one remote file into the vault; False (and a line in `skipped`) if it could not be read."""
    try:
        fh = session.sftp.open(rpath(root, entry.path), "rb")
    except OSError as exc:
        if not _is_file_error(exc):
            raise
        reason = "vanished before it was read" if exc.errno == errno.ENOENT else (exc.strerror or str(exc))
        skipped.append(f"{entry.path}: {reason}")
        return False
    with fh:
        if entry.size > READ_SIZE:  # one request covers a small file; prefetch pipelines the rest
            fh.prefetch(entry.size)
        try:
            ref = writer.write(_CountingReader(fh, session), entry.path, progress=progress)
            after = fh.stat()
        except OSError as exc:
            if not _is_file_error(exc):
                raise
            skipped.append(f"{entry.path}: read failed ({exc.strerror or exc})")
            return False
    entry.chunks, entry.hash = ref.chunks, ref.hash
    if ref.size != entry.size or after.st_size != ref.size or after.st_mtime != entry.mtime_ns // 1_000_000_000:
        skipped.append(f"{entry.path}: changed while being read (backed up as read)")
        entry.size = ref.size
        if after.st_mtime != entry.mtime_ns // 1_000_000_000:
            entry.mtime_ns = int(after.st_mtime or 0) * 1_000_000_000
    return True


# ---- backup -----------------------------------------------------------------------------------


def _previous_entries(vault: Vault, parent: Manifest | None) -> Iterator[Entry]:
    if parent is None or not any(s.name == TREE_STREAM for s in parent.streams):
        return
    with ChunkReader(vault) as reader:
        yield from iter_tree(vault, parent, reader)


@dataclass
class RemoteSource:
    """What to back up: a folder on a host, with its exclude list and one-file-system choice."""

    options: SshOptions
    path: str
    exclude: list[str] = field(default_factory=list)
    one_file_system: bool = False
    listing: str = "auto"

    def url(self) -> str:
        host = f"[{self.options.host}]" if ":" in self.options.host else self.options.host
        return f"ssh://{self.options.username_or_default}@{host}:{self.options.port}{self.path}"


class _Readers:
    """Reads files on `n` connections (the given session plus n - 1 more, opened on first use)."""

    def __init__(self, main: RemoteSession, n: int, writer: ChunkWriter, root: str, progress: Progress | None):
        self.main, self.writer, self.root, self.progress = main, writer, root, progress
        self.sessions: list[RemoteSession] = []
        self._free = [main]
        self._lock = threading.Lock()
        self._local = threading.local()
        self.pool = ThreadPoolExecutor(n, thread_name_prefix="seawall-sftp")

    def _session(self) -> RemoteSession:
        session = getattr(self._local, "session", None)
        if session is None:
            with self._lock:
                session = self._free.pop() if self._free else None
            if session is None:
                session = RemoteSession(self.main.options)
                with self._lock:
                    self.sessions.append(session)
            self._local.session = session
        return session

    def _read(self, entry: Entry) -> tuple[bool, list[str]]:
        skipped: list[str] = []
        ok = read_remote_file(self._session(), self.writer, self.root, entry, skipped, self.progress)
        return ok, skipped

    def submit(self, entry: Entry) -> Future[tuple[bool, list[str]]]:
        return self.pool.submit(self._read, entry)

    def bytes_read(self) -> int:
        return sum(s.bytes_read for s in self.sessions)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        for session in self.sessions:  # a read still running on one of these fails fast
            with contextlib.suppress(Exception):
                session.close()
        self.pool.shutdown(wait=True)


def backup_remote_tree(vault: Vault, source: RemoteSource, dataset: str, *, backup_id: str | None = None,
                       parent: Manifest | None = None, progress: Progress | None = None,
                       session: RemoteSession | None = None, workers: int = 3, readers: int = 2) -> Manifest:
    """Back up a remote folder as a new `files` backup of `dataset`; returns the DONE manifest.

    Unchanged files (same size, mtime and inode as in `parent`) are not read: their chunk lists
    are reused. `session` may be given to reuse a connection (its `bytes_read` grows with what it
    reads); `readers` connections read files in parallel.
    """
    excluder = Excluder(source.exclude)
    with translate_ssh_errors(f"backing up {source.url()}"):
        own = session is None
        session = session or RemoteSession(source.options)
        try:
            check_remote_dir(session, source.path)
            manifest = new_manifest(dataset, "files", source={
                "url": source.url(), "host": source.options.host, "path": source.path,
                "exclude": source.exclude, "one_file_system": source.one_file_system})
            manifest.backup_id = backup_id or manifest.backup_id
            manifest.parent = parent.backup_id if parent else None
            with recording(vault, manifest) as phase:
                phase("listing")
                listing = list_tree(session, source.path, one_file_system=source.one_file_system,
                                    method=source.listing)
                manifest.source["listing"] = listing.method
                manifest.stats.skipped += listing.skipped
                if listing.not_kept:
                    manifest.source["not_kept"] = listing.not_kept
                phase("uploading")
                manifest.transition(BackupStatus.UPLOADING)
                entries = mark_hard_links((e for e in listing.entries if not excluder.excluded(e.path, e.type == "d")),
                                          listing.links)
                manifest.streams = [_upload(vault, session, source.path, entries, manifest.stats, parent,
                                            progress, workers, max(1, readers))]
        finally:
            if own:
                session.close()
    return manifest


def _upload(vault: Vault, session: RemoteSession, root: str, entries: Iterator[Entry], stats: BackupStats,
            parent: Manifest | None, progress: Progress | None, workers: int, readers: int):
    """Read what changed, reuse what did not, and write the index in walk order; returns the index ref."""
    previous = PreviousIndex(_previous_entries(vault, parent))
    known = vault.known_chunks(refresh=True)
    read_before = session.bytes_read
    pending: deque[tuple[Entry, Future | None]] = deque()
    with ChunkWriter(vault, workers=workers) as writer, tempfile.SpooledTemporaryFile(8 << 20) as index:
        pool = _Readers(session, readers, writer, root, progress)
        try:
            for entry in entries:
                future = None
                if entry.type == "f" and not count_and_reuse(entry, previous, known, stats, progress):
                    future = pool.submit(entry)
                pending.append((entry, future))
                while pending and (len(pending) > 4 * readers or pending[0][1] is None or pending[0][1].done()):
                    _emit(*pending.popleft(), stats, index)
            while pending:
                _emit(*pending.popleft(), stats, index)
            stats.change_stats().files_deleted = previous.finish()
        finally:
            pool.close()
        stats.bytes_read = session.bytes_read - read_before + pool.bytes_read()
        index.seek(0)
        tree = writer.write(index, TREE_STREAM, kind="tree")
        writer.fill_stats(stats)
    stats.chunks_total += len(tree.chunks)
    return tree


def _emit(entry: Entry, future: Future | None, stats: BackupStats, index) -> None:
    """Write one entry's index line, in walk order, once its file (if any) has been read."""
    if future is not None:
        ok, skipped = future.result()
        stats.skipped += skipped
        if not ok:
            uncount(entry, stats)
            return
    if entry.type == "f":
        stats.chunks_total += len(entry.chunks)
    index.write(entry.to_line())
