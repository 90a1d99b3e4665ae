"""Listing a remote tree for backup: one remote GNU `find`, or an SFTP walk when no shell is allowed.

SFTP v3 attributes carry neither the inode, the device nor sub-second mtimes, which the
incremental test (size + mtime + inode) and `one_file_system` need. So when the host gives a shell
(the usual case) the tree is listed by one remote `find -printf` (one round trip for the whole
tree, with inode, device, nanosecond mtime and owner; `-xdev` is one-file-system), then sorted here
into walk order (held in memory: about 300 bytes per entry). Hosts that only allow SFTP (e.g.
`ForceCommand internal-sftp`) are walked with `listdir_attr` (lstat semantics): mtimes in whole
seconds, no inode, names must be UTF-8 (paramiko decodes them strictly), and no one-file-system
(refused: `st_dev` is not in SFTP attributes, and `statvfs@openssh.com`'s f_fsid is not a reliable
device id across file systems).
"""

from __future__ import annotations

import errno
import shlex
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import paramiko

from seawall.errors import ConfigError, PermanentError, RetryableError
from seawall.sources import xattr_dump
from seawall.sources.tree import Entry, sort_key
from seawall.ssh import RemoteSession, rpath

_FIND_FIELDS = 12
_FIND_FORMAT = r"%y\0%i\0%D\0%n\0%S\0%s\0%T@\0%m\0%U\0%G\0%P\0%l\0"
_TYPES = {"f": "f", "d": "d", "l": "l", "p": "p"}
_NOT_KEPT = {"s": "a socket is not kept (its server creates it again)",
             "c": "device node not kept over SSH (find reports no device numbers)",
             "b": "device node not kept over SSH (find reports no device numbers)"}


@dataclass
class Listing:
    entries: list[Entry] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    method: str = "find"
    links: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (dev, inode), files with nlink > 1
    not_kept: list[str] = field(default_factory=list)  # what this listing method cannot see at all


def list_with_find(session: RemoteSession, root: str, one_file_system: bool) -> Listing:
    """The whole tree from one remote `find`, in walk order."""
    listing = Listing(method="find")
    pending = bytearray()

    def feed(data: bytes) -> None:
        pending.extend(data)
        fields = pending.split(b"\0")
        whole = (len(fields) - 1) // _FIND_FIELDS * _FIND_FIELDS
        for i in range(0, whole, _FIND_FIELDS):
            _add_find_record(listing, fields[i : i + _FIND_FIELDS])
        del pending[: sum(len(f) + 1 for f in fields[:whole])]

    xdev = "-xdev " if one_file_system else ""
    cmd = f"LC_ALL=C find -P {shlex.quote(root)} {xdev}-printf '{_FIND_FORMAT}'"
    status, _, err = session.run(cmd, on_stdout=feed)
    if pending:
        raise RetryableError(f"listing {root} on {session.display} ended mid-record")
    listing.skipped += _find_errors(err.decode("utf-8", "replace"), root)
    if status not in (0, 1) or (status == 1 and not err):
        raise PermanentError(f"listing {root} on {session.display} failed (find exit {status})")
    listing.entries.sort(key=lambda e: sort_key(e.path))
    return listing


def _add_find_record(listing: Listing, rec: list[bytes]) -> None:
    kind, ino, dev, nlink, sparseness, size, mtime, mode, uid, gid, path, target = (
        f.decode("utf-8", "surrogateescape") for f in rec)
    rel = path or "."
    if kind not in _TYPES:
        listing.skipped.append(f"{rel}: {_NOT_KEPT.get(kind, 'not a regular file, directory or symlink')}")
        return
    if kind == "f" and int(nlink) > 1:
        listing.links[rel] = (int(dev), int(ino))
    secs, _, frac = mtime.partition(".")
    mtime_ns = int(secs) * 1_000_000_000 + int((frac + "000000000")[:9])
    entry = Entry(path=rel, type=kind, mode=int(mode, 8), mtime_ns=mtime_ns, inode=int(ino), uid=int(uid),
                  gid=int(gid), size=int(size) if kind == "f" else 0, target=target if kind == "l" else None)
    if kind == "f" and float(sparseness) < 1.0:  # fewer blocks than bytes: it has holes
        entry.holes = []  # not mapped over SSH: a restore leaves its zero blocks unwritten instead
    listing.entries.append(entry)


def _find_errors(text: str, root: str) -> list[str]:
    """`find: '/r/a': Permission denied` → `a: cannot list directory (Permission denied)`."""
    out = []
    prefix = root.rstrip("/") + "/"
    for line in text.splitlines():
        if not line.startswith("find: '") or "': " not in line:
            if line.strip():
                out.append(f".: {line.strip()}")
            continue
        path, reason = line[len("find: '"):].rsplit("': ", 1)
        if reason == "No such file or directory":
            continue  # vanished while listing: as a local walk, not an error
        rel = "." if path.rstrip("/") == root.rstrip("/") else path.removeprefix(prefix)
        out.append(f"{rel}: cannot list directory ({reason})")
    return out


def list_with_sftp(session: RemoteSession, root: str) -> Listing:
    """Depth-first walk over SFTP (lstat attributes): whole-second mtimes, no inode."""
    listing = Listing(method="sftp", not_kept=[
        "hard links, fifos, extended attributes and ACLs (an SFTP-only account cannot see them)"])
    top = session.sftp.lstat(rpath(root, "."))
    listing.entries.append(_sftp_entry(session, root, ".", top))
    _sftp_walk(session, root, "", listing)
    return listing


def _sftp_walk(session: RemoteSession, root: str, rel: str, listing: Listing) -> None:
    try:
        attrs = session.sftp.listdir_attr(rpath(root, rel or "."))
    except UnicodeDecodeError:  # paramiko decodes names as UTF-8, strictly
        listing.skipped.append(f"{rel or '.'}: cannot list directory (a name is not UTF-8, which SFTP-only "
                               "listing cannot read)")
        return
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.ENOENT):
            raise
        if exc.errno != errno.ENOENT:
            listing.skipped.append(f"{rel or '.'}: cannot list directory (Permission denied)")
        return
    for attr in sorted(attrs, key=lambda a: a.filename):
        path = f"{rel}/{attr.filename}" if rel else attr.filename
        entry = _sftp_entry(session, root, path, attr)
        if entry is None:
            listing.skipped.append(f"{path}: not a regular file, directory or symlink")
            continue
        listing.entries.append(entry)
        if entry.type == "d":
            _sftp_walk(session, root, path, listing)


def _sftp_entry(session: RemoteSession, root: str, path: str, attr: paramiko.SFTPAttributes) -> Entry | None:
    mode = attr.st_mode or 0
    common = {"path": path, "mode": stat.S_IMODE(mode), "mtime_ns": int(attr.st_mtime or 0) * 1_000_000_000,
              "uid": attr.st_uid or 0, "gid": attr.st_gid or 0}
    if stat.S_ISDIR(mode):
        return Entry(type="d", **common)
    if stat.S_ISREG(mode):
        return Entry(type="f", size=attr.st_size or 0, **common)
    if stat.S_ISLNK(mode):
        target = session.sftp.readlink(rpath(root, path))
        return Entry(type="l", target=target, **common)
    return None


def list_tree(session: RemoteSession, root: str, *, one_file_system: bool = False,
              method: str = "auto") -> Listing:
    """List `root` with `find` when the host allows commands, else over SFTP (see module docs)."""
    if method not in ("auto", "find", "sftp"):
        raise ConfigError(f"unknown listing method {method!r}", hint="use auto, find or sftp")
    use_find = method == "find" or (method == "auto" and session.has_shell(root))
    if not use_find and one_file_system:
        raise ConfigError(f"one-file-system needs shell access to {session.display} (SFTP has no device ids)",
                          hint="allow commands for this account, or back up without --one-file-system")
    listing = list_with_find(session, root, one_file_system) if use_find else list_with_sftp(session, root)
    if use_find:
        _add_xattrs(session, root, listing)
    if any(line.startswith(".: cannot list directory") for line in listing.skipped):
        raise ConfigError(f"source path {root} on {session.display} is not readable",
                          hint="connect as a user that can read it")
    return listing


def _add_xattrs(session: RemoteSession, root: str, listing: Listing) -> None:
    """Extended attributes and ACLs from one remote getfattr, onto the listed entries."""
    attrs, why_not = xattr_dump.read_remote(session, root)
    if why_not:
        listing.not_kept.append(f"extended attributes and ACLs: {why_not}")
    for entry in listing.entries:
        entry.xattrs = attrs.get(entry.path) or None


def mark_hard_links(entries: Iterable[Entry], links: dict[str, tuple[int, int]]) -> Iterator[Entry]:
    """Further paths of an inode already seen become hard-link entries to its first (kept) path."""
    first: dict[tuple[int, int], str] = {}
    for entry in entries:
        inode = links.get(entry.path) if entry.type == "f" else None
        if inode is not None and inode in first:
            entry = Entry(path=entry.path, type="h", mode=entry.mode, mtime_ns=entry.mtime_ns, inode=entry.inode,
                          uid=entry.uid, gid=entry.gid, target=first[inode], xattrs=entry.xattrs)
        elif inode is not None:
            first[inode] = entry.path
        yield entry
