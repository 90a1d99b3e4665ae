"""Triggers: conditions watched while the command runs (a kill is timed from when one held).

They poll directory listings (and inotify, through libc, for objects that live for microseconds)
rather than sleeping, so the short windows between two writes are hit often.
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Trigger:
    """A named condition polled every millisecond; the kill delay counts from when it first holds."""

    name: str
    holds: Callable[[], bool]
    close: Callable[[], None] = lambda: None


def lease_taken(vault_dir: Path, kind: str = "shared") -> Trigger:
    """The command took a lease on a local vault (its real work starts).

    Make it just before the run: a lease a killed process left behind is not taken for a new one.
    """
    if kind == "exclusive":
        lease = vault_dir / "locks" / "lease"
        stale = _mtime(lease)
        return Trigger("exclusive lease taken", lambda: _mtime(lease) != stale)
    return new_object(vault_dir / "locks" / "shared", "shared lease taken")


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def new_object(directory: Path, name: str) -> Trigger:
    """An object appears in `directory` that was not there when the trigger was made."""
    before = set(os.listdir(directory)) if directory.is_dir() else set()

    def holds() -> bool:
        try:
            return any(n not in before and not n.startswith(".tmp-") for n in os.listdir(directory))
        except FileNotFoundError:
            return False

    return Trigger(name, holds)


class _Below:
    """Names that appear one level below a folder (e.g. `data/ab/<pack-id>`), seen through inotify:
    no polling of hundreds of folders while the command runs (that would steal its CPU)."""

    CREATED = 0x100 | 0x80  # IN_CREATE | IN_MOVED_TO
    DELETED = 0x200 | 0x40  # IN_DELETE | IN_MOVED_FROM
    _ISDIR = 0x40000000

    def __init__(self, directory: Path, events: int = CREATED):
        self.directory = directory
        self.want = events  # what `new` reports; creations are always watched, to follow new subfolders
        self.fd = _LIBC.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.dirs: dict[int, str] = {}  # watch descriptor → folder
        self.top = False

    def _watch(self, path: str) -> bool:
        wd = _LIBC.inotify_add_watch(self.fd, os.fsencode(path), self.want | self.CREATED | 0x01000000)  # IN_ONLYDIR
        if wd < 0:
            return False
        self.dirs[wd] = path
        return True

    def _start(self) -> None:
        """Watch the folder and its subfolders once it exists (a new vault's `data/` may not yet)."""
        if self.top or not self._watch(str(self.directory)):
            return
        self.top = True
        for name in _listdir(str(self.directory)):
            self._watch(os.path.join(self.directory, name))

    def new(self) -> set[str]:
        """Names that appeared (or, watching DELETED, went) since the last call, temporaries included."""
        self._start()
        fresh: set[str] = set()
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return fresh
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, size = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16:offset + 16 + size].rstrip(b"\0").decode(errors="replace")
                offset += 16 + size
                if self.dirs.get(wd) == str(self.directory):
                    if mask & self._ISDIR and mask & self.CREATED:  # watch a new subfolder; take what it holds
                        sub = os.path.join(self.directory, name)
                        self._watch(sub)
                        if self.want & self.CREATED:
                            fresh.update(_listdir(sub))
                elif mask & self.want:
                    fresh.add(name)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def new_object_below(directory: Path, name: str) -> Trigger:
    """A new object under its real name (not a `.tmp-*` temporary) appears below `directory`."""
    below = _Below(directory)
    below.new()
    return Trigger(name, lambda: any(not n.startswith(".tmp-") for n in below.new()), below.close)


def temporary_below(directory: Path, name: str) -> Trigger:
    """A new `.tmp-*` file appears below `directory`: an object is being written."""
    below = _Below(directory)
    below.new()
    return Trigger(name, lambda: any(n.startswith(".tmp-") for n in below.new()), below.close)


def deleted_below(directory: Path, name: str) -> Trigger:
    """An object (not a temporary) below `directory` is deleted or renamed away."""
    below = _Below(directory, _Below.DELETED)
    below.new()
    return Trigger(name, lambda: any(not n.startswith(".tmp-") for n in below.new()), below.close)


def object_deleted(directory: Path, name: str) -> Trigger:
    """An object (not a temporary) in the flat folder `directory` is gone (polled: a few names)."""
    before = {n for n in _listdir(str(directory)) if not n.startswith(".tmp-")}
    return Trigger(name, lambda: not before.issubset(_listdir(str(directory))))


def write_triggers(vault_dir: Path, where: str = "") -> list[Trigger]:
    """The windows around chunk writes: a pack being written, a pack stored, an index file written."""
    return [temporary_below(vault_dir / "data", f"a pack being written{where}"),
            new_object_below(vault_dir / "data", f"a pack stored{where}"),
            new_object(vault_dir / "index", f"an index file written{where}")]


def delete_triggers(vault_dir: Path) -> list[Trigger]:
    """The windows around GC's deletions: a pack deleted, an index file deleted."""
    return [deleted_below(vault_dir / "data", "a pack deleted"),
            object_deleted(vault_dir / "index", "an index file deleted")]


_LIBC = ctypes.CDLL(None, use_errno=True)


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []
