"""Local-filesystem object store: the default vault backend.

Writes go to a temporary file in the target directory, are fsync'd, then renamed over the final
name (borgstore posixfs), so a crash never leaves a half-written object under a real key. Chunks
(`put_deferred`) are batched instead: temporary files, each synced (or one `syncfs` for a large
batch), the renames, then their directories synced (or one more `syncfs`);
those sealed into this store's own aligned buffer (`write_buffer`) are written with O_DIRECT, past
the page cache. OS errors are translated in one place: a full disk is `NoSpaceError`, a permission
problem permanent.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import mmap
import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from seawall.errors import (
    ConfigError,
    NoSpaceError,
    ObjectNotFound,
    PermanentError,
    RetryableError,
    SeawallError,
)
from seawall.keys import validate_key
from seawall.memory import huge_buffer
from seawall.stores.base import TEMPORARY_MAX_AGE, ObjectInfo, ObjectStore
from seawall.stores.localsync import SYNC_EACH_MAX, early_writeback, fsync_path, syncfs


@contextlib.contextmanager
def translate_os_errors(what: str):
    """Map OSError to the seawall families, naming `what`."""
    try:
        yield
    except OSError as exc:
        raise os_error(exc, what) from exc


def os_error(exc: OSError, what: str) -> SeawallError:
    """The seawall error for `exc` (a full disk: NoSpaceError; permissions: permanent), naming `what`."""
    if isinstance(exc, FileNotFoundError):
        return ObjectNotFound(f"{what}: not found")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpaceError(f"{what}: no space left on device", hint="free space or use another vault")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermanentError(f"{what}: permission denied ({exc.strerror})")
    if exc.errno in (errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT, errno.ESTALE):
        return RetryableError(f"{what}: {exc.strerror}")
    return PermanentError(f"{what}: {exc.strerror or exc}")


class LocalStore(ObjectStore):
    """Objects are files below `root`; keys map to relative paths."""

    batch_bytes = 4 << 20

    def __init__(self, root: str | os.PathLike, *, fsync: bool = True, create: bool = False):
        self.root = Path(root).absolute()
        self._root_str = str(self.root)
        self.display_url = f"file://{self.root}"
        self.fsync = fsync
        if create:
            with translate_os_errors(f"vault folder {self.root}"):
                self.root.mkdir(parents=True, exist_ok=True)
        elif not self.root.is_dir():
            raise ConfigError(
                f"vault folder {self.root} does not exist", hint="check the URL or run `seawall init`"
            )
        self._owner = _foreign_owner(self.root)
        self._deferred: list[tuple[str, str]] = []
        self._deferred_lock = threading.Lock()
        self._dirs: set[str] = set()  # directories known to exist: one stat less per object
        self._new_dirs: set[str] = set()  # created since the last commit: their parents are synced then
        # Temporary names: a random prefix per store (O_EXCL guards the rest) and a counter, so
        # naming a temporary file costs no getrandom(2) call.
        self._tmp_prefix = secrets.token_hex(6)
        self._tmp_counter = itertools.count()
        self._unsynced = 0  # bytes written by put_deferred since the last early writeback
        self._writeback: threading.Thread | None = None
        self._direct = _direct_io_wanted()
        self._buffers = threading.local()  # per thread: the aligned buffer `write_buffer` hands out

    # Paths are str, not pathlib: per chunk, pathlib's parsing cost more than the syscalls it wraps.
    def _path(self, key: str) -> str:
        return os.path.join(self._root_str, key)

    def _mkdirs(self, path: str) -> None:
        if path in self._dirs:
            return
        if not os.path.isdir(path):
            self._mkdirs(os.path.dirname(path))
            with contextlib.suppress(FileExistsError):
                os.mkdir(path)
                with self._deferred_lock:  # not into a set `commit` has already taken
                    self._new_dirs.add(path)
                if self._owner:
                    os.chown(path, *self._owner)
        self._dirs.add(path)

    def write_buffer(self, size: int) -> memoryview | None:
        """This thread's page-aligned buffer, which `put_deferred` writes with direct I/O.

        Direct I/O skips the page cache: a backup does not evict the machine's cache, and no fresh
        cache page is filled per byte written. On this kind of VM filling fresh pages cost more CPU
        than compressing the same bytes (bench/README.md). Small objects go through the cache.
        """
        if not self._direct or size < DIRECT_MIN:
            return None
        buf = getattr(self._buffers, "mmap", None)
        if buf is None or len(buf) < size:
            buf = self._buffers.mmap = mmap.mmap(-1, -(-size // DIRECT_ALIGN) * DIRECT_ALIGN)
        return memoryview(buf)

    def pack_buffer(self, size: int) -> memoryview:
        """A page-aligned buffer for a pack: `put_deferred` writes it with direct I/O (see `write_buffer`).

        `seawall.memory.huge_buffer` (private, huge pages): with SPARE_BUFFERS (seawall.vault.packer)
        the write path's faults per GiB went 47-52k -> 25-30k.
        """
        return huge_buffer(-(-size // DIRECT_ALIGN) * DIRECT_ALIGN)

    def _open_tmp(self, path: str, direct: bool) -> tuple[str, int, bool]:
        """(temporary name, fd, whether the fd is O_DIRECT) for a new object at `path`."""
        parent = os.path.dirname(path)
        self._mkdirs(parent)
        tmp = f"{parent}/.tmp-{self._tmp_prefix}-{next(self._tmp_counter)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | (os.O_DIRECT if direct else 0)
        try:
            return tmp, os.open(tmp, flags, 0o600), direct
        except FileNotFoundError:  # the directory was removed since we saw it (GC of an empty dir)
            self._dirs.discard(parent)
            self._mkdirs(parent)
            return tmp, os.open(tmp, flags, 0o600), direct
        except OSError as exc:
            if not direct or exc.errno != errno.EINVAL:
                raise
            self._direct = False  # this file system takes no direct I/O: use the page cache from now on
            return self._open_tmp(path, False)

    def _write_direct(self, fd: int, view: memoryview) -> memoryview:
        """Write the block-aligned head of `view` past the page cache; returns the rest, for the cache."""
        aligned = len(view) & -DIRECT_ALIGN
        try:
            while aligned:
                n = os.write(fd, view[:aligned])
                view, aligned = view[n:], aligned - n
                if n % DIRECT_ALIGN:
                    break
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self._direct = False  # an alignment this store cannot meet: use the page cache from now on
        if view:  # 0: of the flags F_SETFL changes, the file was opened with O_DIRECT alone
            fcntl.fcntl(fd, fcntl.F_SETFL, 0)
        return view

    def _write_tmp(self, path: str, data: bytes | memoryview, *, sync: bool = True) -> str:
        view = memoryview(data)
        # Only our own buffers are aligned; a misused one fails with EINVAL and is written cached.
        # Synced writes too: a WAL segment sealed into `write_buffer` skips the page cache, and its
        # fsync then has only metadata left to write.
        direct = self._direct and isinstance(view.obj, mmap.mmap) and len(view) >= DIRECT_MIN
        tmp, fd, direct = self._open_tmp(path, direct)
        try:
            if self._owner:
                os.fchown(fd, *self._owner)
            if direct:
                view = self._write_direct(fd, view)
            while view:
                view = view[os.write(fd, view):]
            if self.fsync and sync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            _unlink(tmp)
            raise
        os.close(fd)
        return tmp

    def _sync_dir(self, path: str) -> None:
        if self.fsync:
            fsync_path(path, os.O_RDONLY | os.O_DIRECTORY)

    def _sync_names(self, path: str) -> None:
        """After a synchronous write of `path`: its name durable, and so are the entries of the
        directories `_mkdirs` made for it (the first WAL segment of a cluster creates `wal/<sysid>/`:
        a segment acknowledged to PostgreSQL must not vanish with its directory in a crash)."""
        self._sync_dir(os.path.dirname(path))
        if not self.fsync:
            return
        with self._deferred_lock:
            made = {d for d in self._new_dirs if path.startswith(d + "/")}
        for parent in sorted({os.path.dirname(d) for d in made}, reverse=True):
            self._sync_dir(parent)
        with self._deferred_lock:  # only once synced: a `commit` meanwhile syncs them itself
            self._new_dirs -= made

    def put(self, key: str, data: bytes | memoryview) -> None:
        """`ObjectStore.put`, with a view written as it is: a copy's pack goes out of its own buffer
        (no 16 MiB copy per pack, and its page-aligned mmap is written with direct I/O)."""
        self._put(validate_key(key), data)

    def _put(self, key: str, data: bytes | memoryview) -> None:
        path = self._path(key)
        with translate_os_errors(f"writing {key} to {self.display_url}"):
            tmp = self._write_tmp(path, data)
            try:
                os.replace(tmp, path)
            except BaseException:
                _unlink(tmp)
                raise
            self._sync_names(path)

    def put_deferred(self, key: str, data: bytes | memoryview) -> None:
        """Write a temporary file now; `commit` syncs the batch, then renames.

        Two fsyncs per chunk (file and directory) at once cost more than compressing and encrypting
        it on these disks. Renaming only after the content is synced keeps the guarantee that a crash
        never leaves a chunk under its real name with missing content (a later backup would dedup
        against it).
        """
        path = self._path(validate_key(key))
        try:  # not translate_os_errors: entering a generator-based context manager per chunk costs
            tmp = self._write_tmp(path, data, sync=False)
        except OSError as exc:
            raise os_error(exc, f"writing {key} to {self.display_url}") from exc
        direct = self._direct and isinstance(memoryview(data).obj, mmap.mmap) and len(data) >= DIRECT_MIN
        with self._deferred_lock:
            self._deferred.append((tmp, path))
            self._unsynced += 0 if direct else len(data)  # early writeback is for our page-cache writes
            if self.fsync and self._unsynced >= WRITEBACK_EVERY and not self._writeback_running():
                self._unsynced = 0
                self._writeback = threading.Thread(target=early_writeback, args=(self.root,),
                                                   name="seawall-writeback", daemon=True)
                self._writeback.start()

    def _writeback_running(self) -> bool:
        return self._writeback is not None and self._writeback.is_alive()

    def commit(self) -> None:
        """The temporary files' content durable, then the renames, then the names durable. A small
        batch syncs its own files and directories: `syncfs` also writes back all else the file system
        holds dirty (other processes' writes; a database sharing the disk): 0.33 s against 2.4 ms for
        three 16 MiB packs beside a 600 MB write here, the same ~4 ms when quiet."""
        with self._deferred_lock:
            batch, self._deferred = self._deferred, []
            new_dirs, self._new_dirs = self._new_dirs, set()
            self._unsynced = 0
        if not batch:
            return
        each = len(batch) <= SYNC_EACH_MAX
        with translate_os_errors(f"committing {len(batch)} objects to {self.display_url}"):
            if self.fsync:
                if each:
                    for tmp, _ in batch:
                        fsync_path(tmp, os.O_RDONLY, data_only=True)
                else:
                    syncfs(self.root)
            for tmp, path in batch:
                os.replace(tmp, path)
            if self.fsync:
                if each:  # the renamed names, and the entries of directories made for them
                    for d in sorted({os.path.dirname(p) for _, p in batch} | {os.path.dirname(d) for d in new_dirs}):
                        self._sync_dir(d)
                else:
                    syncfs(self.root)

    def _put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        with translate_os_errors(f"writing {key} to {self.display_url}"):
            if os.path.lexists(path):
                return False
            tmp = self._write_tmp(path, data)
            try:
                os.link(tmp, path)  # atomic create-if-absent, unlike rename
            except FileExistsError:
                return False
            finally:
                _unlink(tmp)
            self._sync_names(path)
            return True

    def _get(self, key: str) -> bytes:
        try:  # os calls on a str path: pathlib and a buffered file cost more than the read itself
            fd = os.open(self._path(key), os.O_RDONLY)
            try:
                size = os.fstat(fd).st_size
                data = os.read(fd, size + 1)  # one byte more, so a file that grew is noticed
                if len(data) != size:  # a short read or a file that grew: read on to the end
                    data += b"".join(iter(lambda: os.read(fd, 1 << 20), b""))
                return data
            finally:
                os.close(fd)
        except OSError as exc:
            raise os_error(exc, f"object {key} in {self.display_url}") from exc

    def _get_range(self, key: str, offset: int, length: int) -> bytes:
        try:
            fd = os.open(self._path(key), os.O_RDONLY)
            try:
                return os.pread(fd, length, offset) if length else b""
            finally:
                os.close(fd)
        except OSError as exc:
            raise os_error(exc, f"object {key} in {self.display_url}") from exc

    def _stat(self, key: str) -> ObjectInfo | None:
        try:
            st = os.stat(self._path(key))
        except FileNotFoundError:
            return None
        except OSError:
            with translate_os_errors(f"object {key} in {self.display_url}"):
                raise
        return ObjectInfo(key, st.st_size, st.st_mtime)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root
        with translate_os_errors(f"listing {prefix or '/'} in {self.display_url}"):
            if not base.is_dir():
                return
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames[:] = [d for d in dirnames if not d.startswith(".tmp")]
                rel = os.path.relpath(dirpath, self.root)
                for name in filenames:
                    key = name if rel == "." else f"{rel}/{name}"
                    if not key.startswith(prefix) or name.startswith(".tmp"):
                        continue
                    try:
                        st = os.stat(os.path.join(dirpath, name))
                    except FileNotFoundError:  # deleted while listing
                        continue
                    yield ObjectInfo(key, st.st_size, st.st_mtime)

    def _delete(self, key: str) -> None:
        with translate_os_errors(f"deleting {key} in {self.display_url}"):
            _unlink(self._path(key))

    def remove_temporaries(self, older_than: float = TEMPORARY_MAX_AGE) -> list[str]:
        """Unlink `.tmp-*` files of crashed writes (a kill -9 between write and rename) older than that."""
        cutoff, removed = time.time() - older_than, []
        with translate_os_errors(f"removing temporary files in {self.display_url}"):
            for dirpath, _dirs, filenames in os.walk(self._root_str):
                for name in filenames:
                    path = os.path.join(dirpath, name)
                    if name.startswith(".tmp-") and _mtime(path) < cutoff:
                        _unlink(path)
                        removed.append(os.path.relpath(path, self._root_str))
        return removed


DIRECT_ALIGN = 4096  # buffer address, length and file offset of a direct write: any disk's block size
DIRECT_MIN = 64 << 10  # below this a cached write costs little and a direct one waits for the disk


def _direct_io_wanted() -> bool:
    """Direct I/O unless the platform lacks it or SEAWALL_DIRECT_IO=0 turns it off."""
    return hasattr(os, "O_DIRECT") and os.environ.get("SEAWALL_DIRECT_IO", "1") != "0"


# Early writeback: the disk writes the temporary files we wrote through the page cache while chunks
# are still being sealed, so the syncs in `commit` (a barrier the whole backup waits for) find little
# left to write.
WRITEBACK_EVERY = 64 << 20


def _mtime(path: str) -> float:
    try:
        return os.lstat(path).st_mtime
    except FileNotFoundError:
        return float("inf")  # gone already: nothing to remove


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _foreign_owner(root: Path) -> tuple[int, int] | None:
    """When root writes into a vault folder owned by another user (e.g. `postgres`, whose
    archive_command shares the vault), new files keep that owner so both sides can read them."""
    if os.geteuid() != 0 or not root.exists():
        return None
    st = root.stat()
    return (st.st_uid, st.st_gid) if st.st_uid != 0 else None


def from_url(url: str, *, create: bool = False, fsync: bool = True, **_: object) -> LocalStore:
    """`file:///path` → LocalStore."""
    from seawall.stores import local_path_from_url

    return LocalStore(local_path_from_url(url), create=create, fsync=fsync)
