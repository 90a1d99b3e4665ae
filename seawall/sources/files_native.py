"""Groups of small restored files written by one C call (restorefiles.c), loaded with ctypes.

`scripts/setup.sh` compiles `restorefiles.c` into the virtualenv (`LIBRARY`). A missing, stale or
unloadable library is no error: `available()` says False and `files_runs` writes each file from
Python as before. `SEAWALL_RESTOREFILES=python` in the environment forces that path (tests run both).

Why: every system call made from Python releases and retakes the GIL. A small file's create, write,
futimens and close from three restore threads on two cores meant ~8 GIL hand-offs per file, and a
thread back from a short call queued for the GIL longer than the call took. ctypes releases the GIL
once for a whole group (see the C file's comment).
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from array import array
from pathlib import Path

ABI = 1  # seawall_restorefiles_abi() of the library this module can call
LIBRARY = Path(sys.prefix) / "lib" / "libseawall_restorefiles.so"
CHOWN, CHMOD = 1, 2  # flags per file, as in restorefiles.c


@functools.cache
def _lib() -> ctypes.CDLL | None:
    if os.environ.get("SEAWALL_RESTOREFILES") == "python" or not LIBRARY.is_file():
        return None
    try:
        lib = ctypes.CDLL(str(LIBRARY))
        if lib.seawall_restorefiles_abi() != ABI:
            return None
    except (OSError, AttributeError):
        return None
    fn = lib.seawall_write_files
    fn.restype = ctypes.c_int64
    fn.argtypes = [ctypes.c_int64] + [ctypes.c_void_p] * 9
    return lib


def available() -> bool:
    return _lib() is not None


class Group:
    """Files to create and write in one call: path, content, mode, mtime, owner, what to set."""

    __slots__ = ("data", "flags", "gids", "lens", "modes", "mtimes", "paths", "size", "uids")

    def __init__(self) -> None:
        self.paths: list[bytes] = []
        self.data: list[bytes] = []
        self.lens, self.mtimes = array("q"), array("q")
        self.modes, self.flags, self.uids, self.gids = array("I"), array("I"), array("I"), array("I")
        self.size = 0

    def __len__(self) -> int:
        return len(self.paths)

    def add(self, path: str, data: bytes, mode: int, mtime_ns: int, flags: int, uid: int, gid: int) -> None:
        self.paths.append(os.fsencode(path))
        self.data.append(data)
        self.lens.append(len(data))
        self.modes.append(mode)
        self.mtimes.append(mtime_ns)
        self.flags.append(flags)
        self.uids.append(uid)
        self.gids.append(gid)
        self.size += len(data)

    def clear(self) -> None:
        self.__init__()

    def write(self) -> None:
        """Create and write every file; an OSError names the file that failed (those before it are
        complete, the ones after it are not made)."""
        n = len(self.paths)
        if not n:
            return
        # c_char_p arrays point into the bytes objects, which `self` keeps alive for the call.
        paths = (ctypes.c_char_p * n)(*self.paths)
        data = (ctypes.c_char_p * n)(*self.data)
        err = ctypes.c_int(0)
        done = _lib().seawall_write_files(
            n, paths, data, *(a.buffer_info()[0] for a in (self.lens, self.modes, self.mtimes, self.flags,
                                                           self.uids, self.gids)), ctypes.byref(err))
        if done != n:
            raise OSError(err.value, os.strerror(err.value), os.fsdecode(self.paths[done]))
