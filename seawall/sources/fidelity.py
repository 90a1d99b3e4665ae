"""What a file is beyond its bytes: hard links, extended attributes and ACLs, holes, special files.

Backup side (`Fidelity.describe`): a regular file whose inode was already seen in this backup
becomes a hard-link entry (type "h", `target` = the first path); extended attributes are read
with `listxattr`/`getxattr` (user.*, and whatever else the process may read: trusted.* and
security.* as root; POSIX ACLs are the `system.posix_acl_access`/`_default` attributes); a file
with fewer blocks than its size has its holes mapped with SEEK_DATA/SEEK_HOLE; fifos and device
nodes are entries of their own ("p", "c", "b" with `rdev`). Restore side: the reverse, and what the
target refuses (a device node or a trusted.* attribute without root, attributes on a file system
without them) is listed in `skipped`, never dropped silently.

Index lines stay backward compatible: the new fields are left out when empty, and old backups
(without them) restore as before.
"""

from __future__ import annotations

import base64
import errno
import os
import stat
from collections.abc import Iterable, Iterator

from seawall.sources.tree import Entry

SPECIAL_TYPES = {stat.S_IFIFO: "p", stat.S_IFCHR: "c", stat.S_IFBLK: "b"}
_TYPE_BITS = {"p": stat.S_IFIFO, "c": stat.S_IFCHR, "b": stat.S_IFBLK}
MAX_HOLES = 4096  # beyond this a file's holes are found again at restore by skipping zero blocks
_ZERO_BLOCK = 4096
_ZEROS = bytes(_ZERO_BLOCK)
_NO_XATTRS = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS)


class Fidelity:
    """Per-backup state: the inodes seen so far (hard links)."""

    def __init__(self) -> None:
        self._inodes: dict[tuple[int, int], str] = {}

    def link_target(self, path: str, st: os.stat_result) -> str | None:
        """The first path of this inode when `path` is a further hard link to it, else None."""
        if st.st_nlink < 2:
            return None
        key = (st.st_dev, st.st_ino)
        first = self._inodes.get(key)
        if first is None:
            self._inodes[key] = path
        return first


def special_entry(path: str, st: os.stat_result, common: dict) -> Entry | None:
    kind = SPECIAL_TYPES.get(stat.S_IFMT(st.st_mode))
    if kind is None:
        return None
    return Entry(type=kind, rdev=st.st_rdev if kind in "cb" else 0, **common)


def read_xattrs(full: str, rel: str, skipped: list[str]) -> dict[str, str] | None:
    """{name: base64 value} of every attribute this process may read; None when there are none."""
    try:
        names = os.listxattr(full, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in _NO_XATTRS and exc.errno != errno.ENOENT:
            skipped.append(f"{rel}: extended attributes not read ({exc.strerror})")
        return None
    if not names:
        return None
    out = {}
    for name in sorted(names):
        try:
            out[name] = base64.b64encode(os.getxattr(full, name, follow_symlinks=False)).decode()
        except OSError as exc:
            if exc.errno != errno.ENODATA:  # removed meanwhile
                skipped.append(f"{rel}: extended attribute {name} not read ({exc.strerror})")
    return out or None


def write_xattrs(path: str, entry: Entry, skipped: list[str]) -> None:
    """Set the entry's attributes on `path`; those the target refuses are listed in `skipped`."""
    for name, value in (entry.xattrs or {}).items():
        try:
            os.setxattr(path, name, base64.b64decode(value), follow_symlinks=False)
        except OSError as exc:
            why = "needs root" if exc.errno == errno.EPERM else exc.strerror
            skipped.append(f"{entry.path}: extended attribute {name} not restored ({why})")


def find_holes(fd: int, size: int) -> list[list[int]] | None:
    """[[offset, length], ...] of the holes of an open file (SEEK_HOLE/SEEK_DATA); None if there are none.

    `[]` stands for "too many to list": the restore then skips zero blocks instead.
    """
    holes: list[list[int]] = []
    pos = 0
    try:
        while pos < size:
            hole = os.lseek(fd, pos, os.SEEK_HOLE)
            if hole >= size:
                break
            try:
                data = os.lseek(fd, hole, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no data after the hole, it runs to the end
                    raise
                data = size
            holes.append([hole, min(data, size) - hole])
            if len(holes) > MAX_HOLES:
                return []
            pos = data
    except OSError:
        return None  # a file system without SEEK_HOLE: the file is stored and restored dense
    finally:
        os.lseek(fd, 0, os.SEEK_SET)
    return holes or None


def sparse_spans(pieces: Iterable[bytes], holes: list[list[int]]) -> Iterator[tuple[int, memoryview, int]]:
    """(offset, data to write there, or an empty view, bytes of content consumed) for the whole content.

    Parts inside `holes` are not yielded for writing; with `holes == []` (too many to list) every
    all-zero aligned block is left out instead. The caller truncates the file to its size at the
    end, so a trailing hole stays a hole.
    """
    pos = 0
    spans = iter(holes)
    hole = next(spans, None)
    for data in pieces:
        view, start = memoryview(data), pos
        end = start + len(view)
        while pos < end:
            while hole is not None and hole[0] + hole[1] <= pos:
                hole = next(spans, None)
            if holes and hole is not None and hole[0] <= pos:
                pos = min(end, hole[0] + hole[1])
                continue
            stop = end if hole is None or not holes else min(end, hole[0])
            yield from _dense(view[pos - start:stop - start], pos, skip_zeros=not holes)
            pos = stop
        yield pos, view[:0], len(view)


def _dense(view: memoryview, offset: int, *, skip_zeros: bool) -> Iterator[tuple[int, memoryview, int]]:
    if not skip_zeros:
        yield offset, view, 0
        return
    i = 0
    while i < len(view):
        step = _ZERO_BLOCK - (offset + i) % _ZERO_BLOCK  # block-aligned in the file, so holes can form
        block = view[i:i + step]
        if block != _ZEROS[:len(block)]:
            yield offset + i, block, 0
        i += step


def write_sparse(fd: int, pieces: Iterable[bytes], holes: list[list[int]], size: int) -> Iterator[int]:
    """Write the content with its holes left unwritten (see `sparse_spans`); yields bytes consumed."""
    for offset, data, consumed in sparse_spans(pieces, holes):
        if data:
            os.pwrite(fd, data, offset)
        if consumed:
            yield consumed
    os.ftruncate(fd, size)


def make_special(path: str, entry: Entry, as_root: bool, skipped: list[str]) -> bool:
    """Create a fifo or device node; False (listed in `skipped`) when that needs root we lack."""
    if entry.type != "p" and not as_root:
        skipped.append(f"{entry.path}: device node not restored (needs root)")
        return False
    try:
        os.mknod(path, entry.mode | _TYPE_BITS[entry.type], entry.rdev)
    except PermissionError:
        skipped.append(f"{entry.path}: {'fifo' if entry.type == 'p' else 'device node'} not restored "
                       "(permission denied)")
        return False
    return True
