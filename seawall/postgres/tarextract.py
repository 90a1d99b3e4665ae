"""Extract a base-backup tar stream into a data directory: fast, and never outside it.

Why not `tarfile`: its stream mode ("r|") moves every byte through four copies (BufferedReader,
10 KiB reads, a join, two slices) and runs a realpath and several stat calls per member. On a 1 GB
base backup (1,338 members) that was 3.0 s of a 2-core machine's time against 2.3 s for the whole
`pgbackrest restore`. Here file data goes from the vault's plaintext chunks straight to `os.write`
(no copy), a header costs one `TarInfo.frombuf`, and ownership is set on the open descriptor (no
second walk over the tree).

Writeback is started as files are written (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, asynchronous):
PostgreSQL fsyncs the whole data directory before it starts recovery from a base backup, and without
this the page cache held ~1 GB of dirty data at that point (0.5 s of waiting, measured) while the
disk had sat idle during the extraction.

Safety rules (the same as tarfile's `data` filter, which Debian's Python 3.11.2 lacks): names are
relative without `..`; symbolic and hard links must point inside the data directory; only regular
files, directories and links are accepted; nothing is ever written through a symbolic link (no
member may have a link among its parents, files are created with O_EXCL | O_NOFOLLOW); a member
that appears twice is refused rather than overwriting. The data directory must start empty.
"""

from __future__ import annotations

import ctypes
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path

from seawall.errors import IntegrityError

_BLOCK = 512
_ZERO = bytes(_BLOCK)
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
_META_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE)
_SYNC_FILE_RANGE_WRITE = 2
_KICK_EVERY = 32 << 20  # start writeback of a large file every 32 MiB, not only when it is closed


def _sync_file_range() -> ctypes._CFuncPtr | None:
    fn = getattr(ctypes.CDLL(None, use_errno=True), "sync_file_range", None)
    if fn is not None:
        fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    return fn


def check_member(name: str, kind: bytes, linkname: str = "") -> None:
    """Refuse a member that could land outside the data directory, or is not a file, dir or link.

    Raises:
        IntegrityError: the member is unsafe to extract.
    """
    parts = name.split("/")
    bad = not name or name.startswith("/") or ".." in parts
    if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        base = os.path.dirname(name) if kind == tarfile.SYMTYPE else ""
        resolved = os.path.normpath(os.path.join(base, linkname))
        bad = bad or not linkname or os.path.isabs(linkname) or resolved == ".." or resolved.startswith("../")
    if bad or kind not in (*_FILE_TYPES, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE):
        raise IntegrityError(f"base backup member {name!r} is unsafe to extract (outside the data "
                             "directory or a special file)")


class TarExtractor:
    """Feeds a tar stream, chunk by chunk, into files under `root` (see the module docstring).

    Example:
        >>> TarExtractor(Path(datadir)).extract(chunks)  # doctest: +SKIP
        1338
    """

    def __init__(self, root: Path, *, owner: tuple[int, int] | None = None, writeback: bool = True):
        self.root = str(root)
        self.owner = owner
        self.members = 0
        self._sfr = _sync_file_range() if writeback else None
        self._header = bytearray()
        self._left = self._pad = 0  # content bytes of the current member still to come, then padding
        self._fd = -1
        self._mtime = 0
        self._unkicked = 0
        self._meta: bytearray | None = None  # content of a GNU long name / pax header being read
        self._meta_type = b""
        self._override: dict[str, str] = {}  # name/linkname/size for the next member
        self._dirs: set[str] = {""}
        self._links: set[str] = set()
        self._names: set[str] = set()
        self._member: tarfile.TarInfo | None = None
        self.ended = False

    def extract(self, chunks: Iterable[bytes]) -> int:
        """Write every member; returns their number. The chunks are consumed to the end."""
        try:
            for chunk in chunks:
                if not self.ended:
                    self._feed(memoryview(chunk))
            if self._left or self._pad or self._header or self._meta is not None:
                raise IntegrityError("base backup tar ends in the middle of a member")
        finally:
            self._close_file()
        return self.members

    # ---- the stream ---------------------------------------------------------------------------
    def _feed(self, view: memoryview) -> None:
        pos, n = 0, len(view)
        while pos < n and not self.ended:
            if self._left:
                take = min(self._left, n - pos)
                self._content(view[pos:pos + take])
                self._left -= take
                pos += take
                if not self._left:
                    self._end_member()
            elif self._pad:
                take = min(self._pad, n - pos)
                self._pad -= take
                pos += take
            elif not self._header and n - pos >= _BLOCK:
                self._start_member(view[pos:pos + _BLOCK].tobytes())
                pos += _BLOCK
            else:
                take = min(_BLOCK - len(self._header), n - pos)
                self._header += view[pos:pos + take]
                pos += take
                if len(self._header) == _BLOCK:
                    block = bytes(self._header)
                    self._header.clear()
                    self._start_member(block)

    def _content(self, data: memoryview) -> None:
        if self._meta is not None:
            self._meta += data
            return
        while data:
            written = os.write(self._fd, data)
            data = data[written:]
            self._unkicked += written
        if self._unkicked >= _KICK_EVERY:
            self._kick()

    def _kick(self) -> None:
        if self._sfr is not None and self._fd >= 0 and self._unkicked:
            self._sfr(self._fd, 0, 0, _SYNC_FILE_RANGE_WRITE)  # a failure only loses the head start
        self._unkicked = 0

    def _close_file(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    # ---- members ------------------------------------------------------------------------------
    def _start_member(self, block: bytes) -> None:
        if block == _ZERO:
            self.ended = True  # end-of-archive marker; the rest of the stream is zero padding
            return
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            raise IntegrityError(f"base backup tar has a bad header after {self.members} members: {exc}") from None
        if info.type in _META_TYPES:
            self._meta, self._meta_type = bytearray(), info.type
            self._begin_content(info.size)
            return
        self._apply_override(info)
        name = os.path.normpath(info.name)
        check_member(name, info.type, info.linkname)
        if name in self._names:
            raise IntegrityError(f"base backup member {name!r} appears twice")
        self._names.add(name)
        self._parent_dir(name)
        self._create(info, name)
        self.members += 1
        self._begin_content(info.size if info.type in _FILE_TYPES else 0)

    def _begin_content(self, size: int) -> None:
        self._left, self._pad = size, -size % _BLOCK
        if not size:
            self._end_member()

    def _end_member(self) -> None:
        if self._meta is not None:
            self._take_meta(bytes(self._meta))
            self._meta = None
            return
        if self._fd >= 0:
            self._kick()
            os.utime(self._fd, (self._mtime, self._mtime))
            self._close_file()

    def _take_meta(self, data: bytes) -> None:
        """GNU long name/link, or pax `path`/`linkpath`/`size` records: they apply to the next member."""
        if self._meta_type == tarfile.GNUTYPE_LONGNAME:
            self._override["name"] = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif self._meta_type == tarfile.GNUTYPE_LONGLINK:
            self._override["linkname"] = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif self._meta_type == tarfile.XHDTYPE:
            for key, value in _pax_records(data):
                if key in ("path", "linkpath", "size"):
                    self._override[{"path": "name", "linkpath": "linkname"}.get(key, key)] = value

    def _apply_override(self, info: tarfile.TarInfo) -> None:
        if self._override:
            info.name = self._override.pop("name", info.name)
            info.linkname = self._override.pop("linkname", info.linkname)
            if "size" in self._override:
                info.size = int(self._override.pop("size"))

    def _under_link(self, name: str) -> str | None:
        """The symbolic link among `name`'s parents, if any."""
        if self._links:
            parts = name.split("/")
            for i in range(1, len(parts)):
                if "/".join(parts[:i]) in self._links:
                    return "/".join(parts[:i])
        return None

    def _parent_dir(self, name: str) -> None:
        """Refuse a member under a symbolic link; create missing parent directories (0700)."""
        link = self._under_link(name)
        if link is not None:
            raise IntegrityError(f"base backup member {name!r} lies under the symbolic link {link!r}")
        parent = name.rpartition("/")[0]
        if parent in self._dirs:
            return
        parts = parent.split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if sub not in self._dirs:
                path = os.path.join(self.root, sub)
                if not os.path.isdir(path):
                    os.mkdir(path, 0o700)
                    self._chown(path)
                self._dirs.add(sub)

    def _create(self, info: tarfile.TarInfo, name: str) -> None:
        path = os.path.join(self.root, name)
        if info.type in _FILE_TYPES:
            self._fd = os.open(path, _FILE_FLAGS, (info.mode & 0o755) | 0o600)
            if self.owner:
                os.fchown(self._fd, *self.owner)
            self._mtime = info.mtime  # set once written: writing would move it
        elif info.type == tarfile.DIRTYPE:
            if name == ".":
                return  # the data directory itself: prepare_datadir made it
            if name not in self._dirs:
                os.mkdir(path, (info.mode & 0o755) | 0o700)
                self._dirs.add(name)
            self._chown(path)
        elif info.type == tarfile.SYMTYPE:
            os.symlink(info.linkname, path)
            self._links.add(name)
            self._chown(path)
        else:  # hard link to an earlier member, itself checked not to lie under a symbolic link
            target = os.path.normpath(info.linkname)
            if self._under_link(target) is not None:
                raise IntegrityError(f"base backup member {name!r} links to {target!r}, under a symbolic link")
            os.link(os.path.join(self.root, target), path, follow_symlinks=False)

    def _chown(self, path: str) -> None:
        if self.owner:
            os.chown(path, *self.owner, follow_symlinks=False)


def _pax_records(data: bytes) -> list[tuple[str, str]]:
    """`LEN key=value\\n` records of a pax extended header."""
    out, pos = [], 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0 or not data[pos:space].isdigit():
            break
        length = int(data[pos:space])
        if length <= 0:
            break
        record = data[space + 1:pos + length - 1]
        key, _, value = record.partition(b"=")
        out.append((key.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape")))
        pos += length
    return out


def server_owner() -> tuple[int, int] | None:
    """(uid, gid) files must belong to: the server OS user when we run as root, else None (ours)."""
    import pwd

    from seawall.postgres import binaries

    user = binaries.os_user()
    if not user:
        return None
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def extract_stream(chunks: Iterable[bytes], root: Path, *, writeback: bool = True) -> int:
    """Extract a tar stream given as byte chunks into the empty directory `root`; returns the members."""
    return TarExtractor(root, owner=server_owner(), writeback=writeback).extract(chunks)
