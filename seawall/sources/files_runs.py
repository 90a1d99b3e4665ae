"""File contents of a tree restore, read pack by pack and written into many files at once.

`RunWriter.add` takes the tree's regular files in walk order and plans them a batch at a time:
every blob a batch needs is looked up in the index and grouped by pack; each pack's blobs, sorted
by offset, make "runs" of neighbours (gaps up to `gap` bytes are read through: cheaper than
another request) of at most `RUN_BYTES` (a whole pack on a remote store). Worker threads read a run
with one ranged read and write each of its blobs wherever it goes. Used by
`seawall.sources.files_restore`, which describes the whole restore.

A file of one blob is written whole by one worker (create, write, metadata, close): where
`files_native`'s C writer is built, a group of such files at a time in one call without the GIL
(files with extended attributes stay in Python). A file of
several blobs is written at offsets by whichever workers read them: the first creates it, each
reopens it to write (no descriptor is held between runs, so a batch of many large files cannot
run out of them), and the one that writes the last blob sets the metadata. A file with holes takes
the sequential path of its own (`fidelity.write_sparse` needs its content in order).

Checks: every blob is authenticated, decrypted and checked against its keyed id and its recorded
size; a one-blob file is also checked against its recorded BLAKE3; for a file of several blobs,
written out of order, the per-blob checks are the proof (restic checks no more). A chunk the
index does not list (a format v1 vault's loose chunks) or whose pack has gone since the index was
read (a concurrent GC repacked it) is read on its own through `Vault.get_chunk`, which finds it.
"""

from __future__ import annotations

import errno
import os
import queue
import threading
from collections.abc import Callable, Iterator

import blake3

from seawall.errors import IntegrityError, ObjectNotFound, PermanentError
from seawall.sources import fidelity, files_native
from seawall.sources.tree import Entry
from seawall.vault import Vault
from seawall.vault.reader import COALESCE_GAP

Progress = Callable[[int], None]
# The restorefiles.c flags that give a fresh file its metadata, or None if it needs Python (xattrs)
NativeFlags = Callable[[Entry], "int | None"]
# (open descriptor, path, entry, fresh): owner, attributes, mode, mtime; `fresh`: the file was just
# created by this process with the entry's permission bits (what it may leave as they are: see _Tree)
Meta = Callable[[int, str, Entry, bool], None]

# A batch is planned at once: big enough that a pack's share of it makes long runs (packs are 16-32
# MiB and a backup fills a few at a time), small enough that its plan stays a few MiB of objects.
BATCH_FILES = 8192
BATCH_BYTES = 64 << 20
RUN_BYTES = 8 << 20  # one ranged read; one per worker is held at a time, which bounds the memory
# A remote store (S3): twice the batch and runs of up to a whole 32 MiB pack, so half the ranged GETs.
# Each GET is a round trip, and moto (like some S3-compatible servers) reads the whole object to
# serve a range: 100,000 small files took 70 GETs and 1.8-2.3 s of moto CPU with 8 MiB runs, 35 GETs
# and 1.1-1.2 s with these (restore wall 14.4/16.0 -> 11.7/13.1 s, alternating pairs; bench/PACKS.md).
REMOTE_SCALE = 2
REMOTE_RUN_BYTES = 32 << 20
# One-blob files are written by the C writer (files_native) in groups of this many files or bytes:
# one GIL release per group. Small enough that the other threads keep decrypting meanwhile.
GROUP_FILES = 64
GROUP_BYTES = 4 << 20
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_REOPEN = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC


class _File:
    """A file being restored; `lock` only for files of several blobs (None: written whole)."""

    __slots__ = ("created", "entry", "left", "lock", "path")

    def __init__(self, entry: Entry, path: str):
        self.entry, self.path = entry, path
        self.left = len(entry.chunks)
        self.lock = threading.Lock() if self.left > 1 else None
        self.created = False


# (offset in the pack, sealed length, chunk id, plaintext size, file, offset in the file)
Blob = tuple[int, int, str, int, _File, int]


def _offset(blob: Blob) -> int:
    return blob[0]


def runs(blobs: list[Blob], gap: int, limit: int = RUN_BYTES) -> Iterator[tuple[int, int, list[Blob]]]:
    """(start, end, blobs) of one pack's blobs sorted by offset, neighbours within `gap` together."""
    members: list[Blob] = []
    start = end = 0
    for blob in blobs:
        offset, length = blob[0], blob[1]
        if members and offset - end <= gap and max(end, offset + length) - start <= limit:
            members.append(blob)
            end = max(end, offset + length)
            continue
        if members:
            yield start, end, members
        start, end, members = offset, offset + length, [blob]
    if members:
        yield start, end, members


class RunWriter:
    """Writes the contents of regular files (see the module docstring); `finish` waits for all."""

    def __init__(self, vault: Vault, workers: int, progress: Progress | None, meta: Meta,
                 native: NativeFlags | None = None):
        self.vault, self.progress, self.meta = vault, progress, meta
        self.native = native if native is not None and files_native.available() else None
        self.chunks = vault.chunks
        self.locations = self.chunks.index.locations  # a dict: a lookup per blob, no lock
        self.gap = max(COALESCE_GAP, vault.store.read_ahead // 4)
        remote = vault.store.remote
        scale = REMOTE_SCALE if remote else 1
        self.batch_files, self.batch_bytes = BATCH_FILES * scale, BATCH_BYTES * scale
        self.run_bytes = max(RUN_BYTES, REMOTE_RUN_BYTES) if remote else RUN_BYTES
        self.count = 0
        self._by_pack: dict[str, list[Blob]] = {}
        self._loose: list[Blob] = []
        self._files = self._bytes = 0
        self._jobs = _Jobs(max(1, workers))

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._jobs.close(cancel=exc_type is not None)

    def add(self, entry: Entry, path: str) -> None:
        """Plan (or, for an empty or sparse file, write) one regular file."""
        self.count += 1
        if sum(c[1] for c in entry.chunks) != entry.size:
            raise IntegrityError(f"file {entry.path}: its chunks do not add up to its recorded size")
        if entry.holes is not None:
            self._jobs.submit(self._sparse, _File(entry, path))
            return
        if not entry.chunks:
            self._whole(_File(entry, path), b"")
            return
        f = _File(entry, path)
        offset = 0
        for chunk_id, size in entry.chunks:
            loc = self.locations.get(chunk_id)
            if loc is None:
                self._loose.append((0, 0, chunk_id, size, f, offset))
            else:
                self._by_pack.setdefault(loc[0], []).append((loc[1], loc[2], chunk_id, size, f, offset))
            offset += size
        self._files += 1
        self._bytes += entry.size
        if self._files >= self.batch_files or self._bytes >= self.batch_bytes:
            self._flush()

    def _flush(self) -> None:
        by_pack, self._by_pack = self._by_pack, {}
        for pack, blobs in by_pack.items():
            blobs.sort(key=_offset)
            for start, end, members in runs(blobs, self.gap, self.run_bytes):
                self._jobs.submit(self._run, (pack, start, end, members))
        loose, self._loose = self._loose, []
        for start in range(0, len(loose), 64):
            self._jobs.submit(self._one_by_one, loose[start:start + 64])
        self._files = self._bytes = 0

    def finish(self) -> int:
        """Write what is planned, wait for every file; returns the number of files."""
        self._flush()
        self._jobs.close(cancel=False)
        return self.count

    # ---- in the workers ------------------------------------------------------------------------
    def _run(self, job: tuple[str, int, int, list[Blob]]) -> None:
        pack, start, end, blobs = job
        try:
            view = memoryview(self.vault.store.get_range(pack, start, end - start))
        except ObjectNotFound:  # repacked since the index was read: Vault.get_chunk finds the copies
            self._one_by_one(blobs)
            return
        last, plain = -1, b""
        group = files_native.Group() if self.native else None
        for offset, length, chunk_id, size, f, at in blobs:
            if offset != last:  # a blob used twice in a row (a repeated chunk) is opened once
                plain = self.chunks.open(chunk_id, pack, view[offset - start:offset - start + length])
                last = offset
            data = _sized(chunk_id, plain, size)
            if group is not None and f.lock is None and (flags := self.native(f.entry)) is not None:
                self._grouped(group, f, data, flags)
            else:
                self._write(f, data, at)
        if group:
            self._write_group(group)

    def _grouped(self, group: files_native.Group, f: _File, data: bytes, flags: int) -> None:
        """Queue a one-blob file for the C writer; write the group once it is `GROUP_FILES` long."""
        entry = f.entry
        _check_hash(entry, data)
        group.add(f.path, data, entry.mode, entry.mtime_ns, flags, entry.uid, entry.gid)
        if len(group) >= GROUP_FILES or group.size >= GROUP_BYTES:
            self._write_group(group)

    def _write_group(self, group: files_native.Group) -> None:
        try:
            group.write()
        except OSError as exc:
            raise _translated(exc, exc.filename) from exc
        if self.progress:
            self.progress(group.size)
        group.clear()

    def _one_by_one(self, blobs: list[Blob]) -> None:
        for _, _, chunk_id, size, f, at in blobs:
            self._write(f, _sized(chunk_id, self.vault.get_chunk(chunk_id), size), at)

    def _write(self, f: _File, data: bytes, at: int) -> None:
        if f.lock is None:
            self._whole(f, data)
        else:
            self._part(f, data, at)
        if self.progress:
            self.progress(len(data))

    def _whole(self, f: _File, data: bytes) -> None:
        entry = f.entry
        _check_hash(entry, data)
        try:
            # Created with its own permission bits (a descriptor opened by O_CREAT writes whatever
            # they say), so the metadata step may find nothing left to change.
            fd = os.open(f.path, _CREATE, entry.mode & 0o777)
            try:
                if data:
                    _write_all(fd, data, 0)
                self.meta(fd, f.path, entry, True)
            finally:
                os.close(fd)
        except OSError as exc:
            raise _translated(exc, f.path) from exc

    def _part(self, f: _File, data: bytes, at: int) -> None:
        try:
            with f.lock:  # the first writer creates the file, the others wait for that
                fd = -1 if f.created else os.open(f.path, _CREATE, 0o600)
                f.created = True
            if fd < 0:
                fd = os.open(f.path, _REOPEN)
            try:
                _write_all(fd, data, at)
            finally:
                os.close(fd)
            with f.lock:
                f.left -= 1
                last = not f.left
            if last:
                fd = os.open(f.path, _REOPEN)
                try:
                    self.meta(fd, f.path, f.entry, False)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise _translated(exc, f.path) from exc

    def _sparse(self, f: _File) -> None:
        entry = f.entry
        try:
            fd = os.open(f.path, _CREATE, 0o600)
            try:
                for n in fidelity.write_sparse(fd, self._pieces(entry), entry.holes or [], entry.size):
                    if self.progress:
                        self.progress(n)
                self.meta(fd, f.path, entry, False)
            finally:
                os.close(fd)
        except OSError as exc:
            raise _translated(exc, f.path) from exc

    def _pieces(self, entry: Entry) -> Iterator[bytes]:
        """A sparse file's content in order, checked against its recorded hash at the end."""
        hasher = blake3.blake3()
        for chunk_id, size in entry.chunks:
            data = _sized(chunk_id, self.vault.get_chunk(chunk_id), size)
            hasher.update(data)
            yield data
        if entry.hash and hasher.hexdigest() != entry.hash:
            raise IntegrityError(f"file {entry.path} does not match its recorded hash")


def _sized(chunk_id: str, data: bytes, size: int) -> bytes:
    if len(data) != size:
        raise IntegrityError(f"chunk {chunk_id} has {len(data)} bytes, the manifest says {size}")
    return data


def _write_all(fd: int, data: bytes, at: int) -> None:
    view, done = memoryview(data), 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], at + done)


def _check_hash(entry: Entry, data: bytes) -> None:
    """A file written from one blob must hash as the backup recorded it."""
    if entry.hash and blake3.blake3(data).hexdigest() != entry.hash:
        raise IntegrityError(f"file {entry.path} does not match its recorded hash")


def _translated(exc: OSError, path: str) -> BaseException:
    if exc.errno == errno.ENOSPC:
        return PermanentError(f"no space left writing {path}", hint="free space and restore again")
    return exc


class _Jobs:
    """Plain worker threads on a C queue; at most 2 x workers jobs queued or running.

    The first failure is kept and raised by the next `submit` and by `close`; the jobs still queued
    then are dropped (the restore is failing). Threads and a SimpleQueue, not an executor: a Future
    per job cost more GIL time than a small file's whole write (see `seawall.prefetch`).
    """

    def __init__(self, workers: int):
        self._todo: queue.SimpleQueue[tuple[Callable, object] | None] = queue.SimpleQueue()
        self._slots = threading.BoundedSemaphore(2 * workers)
        self.error: BaseException | None = None
        self._threads = [threading.Thread(target=self._work, name=f"seawall-restore-{n}", daemon=True)
                         for n in range(workers)]
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable, arg: object) -> None:
        if self.error is not None:
            raise self.error
        self._slots.acquire()
        self._todo.put((fn, arg))

    def _work(self) -> None:
        while (job := self._todo.get()) is not None:
            try:
                if self.error is None:
                    job[0](job[1])
            except BaseException as exc:  # raised in the planning thread by submit/close
                self.error = self.error or exc
            finally:
                self._slots.release()

    def close(self, *, cancel: bool) -> None:
        """Wait for the queued jobs (`cancel`: drop them), stop the threads, raise a failure."""
        threads, self._threads = self._threads, []
        if cancel and self.error is None:
            self.error = PermanentError("cancelled: the restore is stopping")
        for _ in threads:
            self._todo.put(None)
        for t in threads:
            t.join()
        if threads and self.error is not None and not cancel:
            raise self.error
