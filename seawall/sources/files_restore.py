"""Restoring a file-tree backup into a local folder: planned by pack, many files written at once.

The shape is restic's restorer (`internal/restorer/filerestorer.go`), kept within bounded memory:

- The calling thread walks the tree index once, in order. Directories, symbolic links, fifos and
  device nodes are made as they come; regular files gather into a batch (at most `BATCH_FILES`
  files or `BATCH_BYTES` bytes, twice that on S3; never the whole list). A full batch is planned by pack: the blobs
  its files need, grouped by the pack that holds them and sorted by offset, become ranged reads
  ("runs": neighbouring blobs with small gaps read through, at most `RUN_BYTES` each, up to a
  whole pack on S3).
- Worker threads take runs (`seawall.sources.files_runs`): one ranged read per run; each blob is
  authenticated, decrypted, checked against its keyed id and written into every file and offset
  that needs it. A one-blob file (most small files) is created, written, given its owner,
  attributes, mode and mtime through one descriptor and closed by the worker that read the blob:
  no temporary name, no rename, no hand-off. The batch after is planned while runs are read.
- Memory: one batch's plan plus at most 2 x workers runs in flight, whatever the tree's size.

Nothing half-written is ever listed in the target. Everything is written below a staging folder,
`<target>/.seawall-restore-<backup id>`, whose top-level entries are renamed into the target only
once every file, hard link and directory below them is complete. A killed or failed restore leaves
the target holding that folder alone, with the partial tree inside (a kill during the final
renames, which take milliseconds, also leaves the entries already moved). The next restore into
that target removes the leftover folder and starts over (`check_restore_target` accepts a target
holding nothing else); an exclusive `flock` on the target keeps two restores from sharing it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from seawall.errors import ConfigError
from seawall.manifest import Manifest
from seawall.sources import fidelity, files_native
from seawall.sources.files_runs import RunWriter
from seawall.sources.tree import TREE_STREAM, Entry, iter_entries
from seawall.streams import ChunkReader
from seawall.vault import Vault

Progress = Callable[[int], None]
STAGING_PREFIX = ".seawall-restore-"


def check_restore_target(target: str | os.PathLike) -> Path:
    """The target must not exist or be an empty directory: a restore never overwrites.

    A folder left by a killed restore (`STAGING_PREFIX`) does not count: the restore removes it.
    """
    path = Path(target).absolute()
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        kind = "a symbolic link" if path.is_symlink() else "a file, not a folder"
        raise ConfigError(f"restore target {path} is {kind}", hint="restore into a new or empty folder")
    if path.exists() and any(not name.startswith(STAGING_PREFIX) for name in os.listdir(path)):
        raise ConfigError(f"restore target {path} is not empty", hint="restore into a new or empty folder")
    if path.parent.exists() and not path.parent.is_dir():
        raise ConfigError(f"restore target {path}: its parent {path.parent} is not a folder",
                          hint="create the parent folder first, or pick another target")
    return path


def restore_tree(vault: Vault, manifest: Manifest, target: str | os.PathLike, *,
                 progress: Progress | None = None, workers: int = 3, skipped: list[str] | None = None) -> int:
    """Restore a files backup into `target` (missing or empty); returns the number of files written.

    Hard links are made once every file is written; directory metadata is applied last, deepest
    first. What the target refuses (a device node without root, an attribute it does not support)
    is appended to `skipped`. See the module docstring for the pipeline and what a kill leaves.
    """
    skipped = [] if skipped is None else skipped
    if manifest.kind != "files":
        raise ConfigError(f"backup {manifest.backup_id} is a {manifest.kind} backup, not a file tree")
    root = check_restore_target(target)
    root.mkdir(parents=True, exist_ok=True)
    with _exclusive(root):
        check_restore_target(root)  # again, under the lock: another restore may have finished meanwhile
        _remove_leftovers(root)
        staging = root / f"{STAGING_PREFIX}{manifest.backup_id}"
        staging.mkdir()
        tree = _Tree(staging, os.geteuid() == 0, skipped)
        with ChunkReader(vault, workers=1) as tree_reader, \
                RunWriter(vault, workers, progress, tree.file_meta, tree.native_flags) as files:
            for entry in iter_entries(tree_reader.iter_stream(manifest.stream(TREE_STREAM))):
                tree.add(entry, files)
            count = files.finish()
        tree.finish(root)
    return count


@contextlib.contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    """Hold an exclusive lock on the target folder (released by the kernel if we are killed)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"restore target {root} is being written by another restore",
                              hint="wait for it to finish, or restore into another folder") from None
        yield
    finally:
        os.close(fd)


def _remove_leftovers(root: Path) -> None:
    """Remove the staging folders of killed restores (under our lock, no live restore owns one)."""
    for name in os.listdir(root):
        if name.startswith(STAGING_PREFIX):
            path = root / name
            for folder, _, _ in os.walk(path):  # a killed restore may have set a folder read-only
                with contextlib.suppress(OSError):
                    os.chmod(folder, 0o700)
            shutil.rmtree(path)


class _Tree:
    """Everything but file contents: folders, links, special files, and the metadata of all."""

    def __init__(self, staging: Path, as_root: bool, skipped: list[str]):
        self.staging, self.base = staging, str(staging) + "/"
        self.as_root, self.skipped = as_root, skipped
        self.dirs: list[Entry] = []
        self.links: list[Entry] = []
        self.root_entry: Entry | None = None
        self.owner = (os.geteuid(), os.getegid())
        self.umask = _creation_mask(staging)

    def _owned(self, entry: Entry, fresh: bool) -> bool:
        """True if a fresh file already has the entry's owner: it was created by `self.owner` in a
        folder that passes on no group (not set-group-ID; staging folders are made by us)."""
        return fresh and (entry.uid, entry.gid) == self.owner and self.umask is not None

    def _mode_set(self, entry: Entry, fresh: bool) -> bool:
        """True if a fresh file already has the entry's mode: no special bits, none the umask
        took away, and no attributes to write (ACLs change mode bits)."""
        return (fresh and self.umask is not None and not entry.xattrs
                and entry.mode == entry.mode & 0o777 & ~self.umask)

    def add(self, entry: Entry, files: RunWriter) -> None:
        path = self.base + entry.path if entry.path != "." else str(self.staging)
        kind = entry.type
        if kind == "f":
            files.add(entry, path)
        elif kind == "d" and entry.path == ".":
            self.root_entry = entry
        elif kind == "d":
            os.mkdir(path)
            self.dirs.append(entry)
        elif kind == "l":
            os.symlink(entry.target, path)
            set_meta(path, entry, self.as_root, self.skipped, follow=False)
        elif kind == "h":
            self.links.append(entry)
        elif fidelity.make_special(path, entry, self.as_root, self.skipped):
            set_meta(path, entry, self.as_root, self.skipped)

    def file_meta(self, fd: int, path: str, entry: Entry, fresh: bool = False) -> None:
        """Owner, attributes, mode and mtime of a written file, through its open descriptor.

        A `fresh` file (created with the entry's permission bits) skips the chown and chmod that
        would change nothing: two of a small file's six system calls (bench/PACKS.md).
        """
        if self.as_root and not self._owned(entry, fresh):
            os.fchown(fd, entry.uid, entry.gid)
        if entry.xattrs:  # after chown, which clears security.capability; before chmod (ACLs set mode bits)
            fidelity.write_xattrs(path, entry, self.skipped)
        if not self._mode_set(entry, fresh):
            os.fchmod(fd, entry.mode)
        os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))

    def native_flags(self, entry: Entry) -> int | None:
        """What `file_meta` does to a fresh file, as flags of the C writer (`files_native`);
        None when the file has attributes to write (only the Python path writes those)."""
        if entry.xattrs:
            return None
        flags = files_native.CHOWN if self.as_root and not self._owned(entry, True) else 0
        return flags if self._mode_set(entry, True) else flags | files_native.CHMOD

    def finish(self, root: Path) -> None:
        """Hard links, folder metadata (children first), then the move into `root`."""
        for entry in self.links:
            link(self.staging, entry, self.skipped)
        top = [e for e in self.dirs if "/" not in e.path]
        for entry in reversed(self.dirs):  # deepest first: writing into a folder bumps its mtime
            if "/" in entry.path:
                set_meta(self.base + entry.path, entry, self.as_root, self.skipped)
        # Top-level folders get their metadata after the move: moving a folder to another parent
        # rewrites its ".." entry, which needs write permission on it (a 0o555 folder would refuse).
        for name in os.listdir(self.staging):
            os.rename(self.base + name, root / name)
        for entry in reversed(top):
            set_meta(root / entry.path, entry, self.as_root, self.skipped)
        os.rmdir(self.staging)
        if self.root_entry is not None:
            set_meta(root, self.root_entry, self.as_root, self.skipped)


def _creation_mask(staging: Path) -> int | None:
    """The umask new files below `staging` get their permission bits through, or None when that
    is not known for sure (no /proc; a set-group-ID staging folder, whose group new files inherit;
    a default ACL, which replaces the umask): then every file gets its chown and chmod."""
    if os.stat(staging).st_mode & 0o2000:
        return None
    try:
        if any(name == "system.posix_acl_default" for name in os.listxattr(staging)):
            return None
        with open("/proc/self/status") as status:
            return next((int(line.split()[1], 8) for line in status if line.startswith("Umask:")), None)
    except (OSError, ValueError):
        return None


def link(root: Path, entry: Entry, skipped: list[str]) -> None:
    """Make the hard link `entry.path` to `entry.target`, both under `root`."""
    try:
        os.link(root / entry.target, root / entry.path, follow_symlinks=False)
    except OSError as exc:
        skipped.append(f"{entry.path}: hard link to {entry.target} not restored ({exc.strerror})")


def set_meta(path: str | Path, entry: Entry, as_root: bool, skipped: list[str], *, follow: bool = True) -> None:
    """Owner (as root), attributes, mode and mtime of `path` from `entry`."""
    if as_root:
        os.chown(path, entry.uid, entry.gid, follow_symlinks=follow)
    if entry.xattrs:  # after chown, which clears security.capability; before chmod (ACLs set mode bits)
        fidelity.write_xattrs(str(path), entry, skipped)
    if follow:  # a symlink's own mode is meaningless on Linux
        os.chmod(path, entry.mode)
    os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=follow)
