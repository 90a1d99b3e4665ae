"""The C page checks and block-reuse test (pgchecksum.c), loaded with ctypes when scripts/setup.sh built them.

`scripts/setup.sh` compiles `pgchecksum.c` into the virtualenv (`LIBRARY` below). A missing,
stale or unloadable library is no error: `available()` says False and `pgpages` uses its numpy port,
which follows the same rules (tests compare both with a transcription of PostgreSQL's code, and
with a real server's pages). `SEAWALL_PGCHECKSUM=numpy` in the environment forces the numpy port.
ctypes releases the GIL for the call, so the reader threads check blocks in parallel, as they did
with numpy's ufuncs.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from pathlib import Path

PAGE = 8192
ABI = 2  # seawall_pgchecksum_abi() of the library this module can call
LIBRARY = Path(sys.prefix) / "lib" / "libseawall_pgchecksum.so"


@functools.cache
def _lib() -> ctypes.CDLL | None:
    if sys.byteorder != "little" or os.environ.get("SEAWALL_PGCHECKSUM") == "numpy" or not LIBRARY.is_file():
        return None
    try:
        lib = ctypes.CDLL(str(LIBRARY))
        if lib.seawall_pgchecksum_abi() != ABI:
            return None
    except (OSError, AttributeError):
        return None
    lib.seawall_bad_pages.restype = ctypes.c_size_t
    lib.seawall_bad_pages.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint32, ctypes.c_uint64,
                                      ctypes.c_void_p]
    lib.seawall_page_checksums.restype = None
    lib.seawall_page_checksums.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint32, ctypes.c_void_p]
    lib.seawall_pages_older.restype = ctypes.c_int
    lib.seawall_pages_older.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_size_t, ctypes.c_uint64, ctypes.c_int]
    return lib


def available() -> bool:
    return _lib() is not None


def _pinned(buf: bytes | bytearray | memoryview, n: int) -> ctypes.Array:
    """A ctypes view of the first `n` pages of `buf`, without a copy when it is writable (the readers'
    reused buffers); a read-only buffer (a page read again) is copied once."""
    view = memoryview(buf).cast("B")[: n * PAGE]
    if view.readonly:
        view = memoryview(bytearray(view))
    return (ctypes.c_char * len(view)).from_buffer(view)


def bad_pages(buf: bytes | bytearray | memoryview, first_block: int, start_lsn: int) -> list[int]:
    """pgpages.bad_pages, in C (call only when `available()`)."""
    n = len(buf) // PAGE
    if not n:
        return []
    lib = _lib()
    out = (ctypes.c_uint32 * n)()
    found = lib.seawall_bad_pages(_pinned(buf, n), n, first_block & 0xFFFFFFFF, start_lsn, out)
    return [first_block + out[i] for i in range(found)]


def page_checksums(buf: bytes | bytearray | memoryview, first_block: int) -> list[int]:
    """pg_checksum_page of each whole page of `buf`, numbered from `first_block` (when `available()`)."""
    n = len(buf) // PAGE
    lib = _lib()
    out = (ctypes.c_uint16 * max(n, 1))()
    if n:
        lib.seawall_page_checksums(_pinned(buf, n), n, first_block & 0xFFFFFFFF, out)
    return list(out[:n])


def pages_older(fd: int, offset: int, length: int, before: int, *, at_end: bool) -> bool:
    """Whether the `length` bytes of file `fd` at `offset` are whole pages, each with an LSN in
    (0, before), reading only their LSNs (and, `at_end`, whether the file ends right after them).
    False also when a read comes up short or fails (when `available()`; pgchecksum.c says more)."""
    return _lib().seawall_pages_older(fd, offset, length, before, int(at_end)) == 1
