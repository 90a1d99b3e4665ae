"""The file-tree index: one JSON line per entry, stored as a chunked stream in the vault.

Entries come in walk order (depth first, children sorted by name), so two indexes can be merged
in one pass with bounded memory: that is how an incremental backup finds the previous version of a
file without loading the previous index into a dict.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from seawall.manifest import BackupStats, ChunkRef

TREE_STREAM = "tree"  # the stream name of a tree's index in a manifest

# One encoder for every line: json.dumps with options builds a new JSONEncoder per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"))
_js = json.encoder.encode_basestring_ascii  # how that encoder writes a str (ensure_ascii)


@dataclass
class Entry:
    """One file-system object. `path` is relative with '/' separators; the root is '.'."""

    path: str
    # "f" file, "d" directory, "l" symlink, "h" hard link (to `target`, an earlier "f"), "p" fifo,
    # "c"/"b" character/block device (`rdev`)
    type: str
    mode: int
    mtime_ns: int
    size: int = 0
    inode: int = 0
    uid: int = 0
    gid: int = 0
    target: str | None = None  # symlink target, or the first path of a hard link
    hash: str | None = None  # BLAKE3 of file contents
    chunks: list[ChunkRef] = field(default_factory=list)
    xattrs: dict[str, str] | None = None  # extended attributes and ACLs: name -> base64 value
    holes: list[list[int]] | None = None  # [[offset, length], ...] of a sparse file; [] = "skip zeros"
    rdev: int = 0  # device number of a "c"/"b" entry
    # Blocks stored as page patches (`seawall.postgres.pagepatch`): block id -> [base id, patch id,
    # page bitmap]; those blocks' ids in `chunks` are not stored chunks. None: no patched block.
    patches: dict[str, list[str]] | None = None

    def to_line(self) -> bytes:
        if (self.type == "f" and self.target is None and self.xattrs is None and self.holes is None
                and not self.rdev and self.hash.__class__ is str and self.patches is None):
            return self._file_line()
        return self._any_line()

    def _file_line(self) -> bytes:
        """`_any_line` of a plain file, byte for byte (tests/unit/test_tree_lines.py), built
        directly: one per file, and the generic encoding was ~5% of a first backup of small files
        (bench/PACKS.md)."""
        out = f'{{"path":{_js(self.path)},"type":"f","mode":{int(self.mode)},"mtime_ns":{int(self.mtime_ns)}'
        for name, value in (("size", self.size), ("inode", self.inode), ("uid", self.uid), ("gid", self.gid)):
            if value:
                out += f',"{name}":{int(value)}'
        out += f',"hash":{_js(self.hash)}'
        if self.chunks not in (None, [], 0):
            out += ',"chunks":[' + ",".join(f"[{_js(c[0])},{int(c[1])}]" for c in self.chunks) + "]"
        return (out + "}\n").encode()

    def _any_line(self) -> bytes:
        # vars(), not asdict(): asdict deep-copies every chunk list, which costs more than the JSON.
        data = {k: v for k, v in vars(self).items()
                if v not in (None, [], 0) or k in ("mode", "mtime_ns") or (k == "holes" and v is not None)}
        return _ENCODER.encode(data).encode() + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> Entry:
        raw = json.loads(line)
        raw["chunks"] = [tuple(c) for c in raw.get("chunks", [])]
        return cls(**raw)

    def stored_ids(self) -> Iterator[str]:
        """The ids of the stored chunks this entry's content needs, in order: a patched block's base
        and patch in place of its own id (which names no stored chunk)."""
        patches = self.patches
        for c in self.chunks:
            if patches and c[0] in patches:
                yield from patches[c[0]][:2]
            else:
                yield c[0]

    def same_content_as(self, other: Entry) -> bool:
        """The incremental test: same type, size, mtime and inode."""
        return (self.type, self.size, self.mtime_ns, self.inode) == (
            other.type,
            other.size,
            other.mtime_ns,
            other.inode,
        )


def sort_key(path: str) -> tuple[str, ...]:
    """Walk order as a comparable key: parents before children, siblings by name."""
    return () if path == "." else tuple(path.split("/"))


def iter_lines(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """Split a stream of byte pieces into lines without holding more than one piece + a line."""
    rest = b""
    for piece in pieces:
        data = rest + piece
        lines = data.split(b"\n")
        rest = lines.pop()
        yield from (line for line in lines if line)
    if rest:
        yield rest


def iter_entries(pieces: Iterable[bytes]) -> Iterator[Entry]:
    for line in iter_lines(pieces):
        yield Entry.from_line(line)


class PreviousIndex:
    """Merge-join lookups into a previous index, for paths asked in walk order.

    Also counts the previous backup's files that no lookup matched (`deleted`, final after
    `finish()`): with the new and changed files, the change statistics of the anomaly detector.
    """

    def __init__(self, entries: Iterable[Entry]):
        self._it = iter(entries)
        self._current: Entry | None = next(self._it, None)
        self._matched = False
        self.deleted = 0

    def _advance(self) -> None:
        if self._current is not None and self._current.type == "f" and not self._matched:
            self.deleted += 1
        self._current, self._matched = next(self._it, None), False

    def find(self, path: str) -> Entry | None:
        key = sort_key(path)
        while self._current is not None and sort_key(self._current.path) < key:
            self._advance()
        if self._current is not None and self._current.path == path:
            self._matched = True
            return self._current
        return None

    def finish(self) -> int:
        """Read past the last lookup; returns the number of previous files never matched."""
        while self._current is not None:
            self._advance()
        return self.deleted


class Tally:
    """A walk's per-file counts, added to its BackupStats once, at the end (`add_to`): assigning a
    pydantic model's attribute costs about a microsecond, and a tree of small files made five such
    assignments per file. Takes a BackupStats' place in `count_and_reuse` and `uncount`."""

    __slots__ = ("bytes_read", "bytes_total", "chunks_total", "files", "files_changed", "files_new",
                 "files_unchanged")

    def __init__(self) -> None:
        self.files = self.bytes_total = self.bytes_read = self.chunks_total = self.files_unchanged = 0
        self.files_new = self.files_changed = 0

    def change_stats(self) -> Tally:
        return self

    def add_to(self, stats: BackupStats) -> None:
        """Add the counts to `stats` and start again from zero."""
        for name in ("files", "bytes_total", "bytes_read", "chunks_total", "files_unchanged"):
            setattr(stats, name, getattr(stats, name) + getattr(self, name))
        if self.files_new or self.files_changed:
            changes = stats.change_stats()
            changes.files_new += self.files_new
            changes.files_changed += self.files_changed
        self.__init__()  # type: ignore[misc]


def uncount(entry: Entry, stats: BackupStats | Tally) -> None:
    """Take back a file `count_and_reuse` counted but that could not be read (it is listed in
    `skipped`, not in `files`)."""
    stats.files -= 1
    stats.bytes_total -= entry.size


def count_and_reuse(entry: Entry, previous: PreviousIndex, known: set[str], stats: BackupStats | Tally,
                    progress: Callable[[int], None] | None) -> bool:
    """Count a file in `stats`; True if its previous version can be reused without reading it.

    The incremental rule shared by local and remote trees: same type, size, mtime and inode as in
    the previous backup, and every chunk of that version still in the vault.
    """
    stats.files += 1
    stats.bytes_total += entry.size
    prev = previous.find(entry.path)
    changes = stats.change_stats()
    if prev is None or prev.type != "f":
        changes.files_new += 1
        return False
    if not prev.same_content_as(entry):
        changes.files_changed += 1
        return False
    if not all(c[0] in known for c in prev.chunks):
        return False
    entry.chunks, entry.hash, entry.holes = prev.chunks, prev.hash, prev.holes
    stats.files_unchanged += 1
    if progress:
        progress(entry.size)
    return True
