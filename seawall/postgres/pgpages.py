"""PostgreSQL data pages read in bulk: page LSNs and data checksums, vectorised with numpy.

A relation file is a sequence of 8 KiB pages. Each page starts with its header: `pd_lsn` (the LSN
of the last WAL record that changed it: two little-endian uint32, high word first), `pd_checksum`
(uint16 at byte 8) and `pd_upper` (uint16 at byte 14; 0 on a page that was never initialised).

`page_checksums` is PostgreSQL's `pg_checksum_page` (src/include/storage/checksum_impl.h): the page
is read as 64 rows of 32 uint32 lanes; each lane is an FNV-1a-like hash (`tmp = sum ^ value;
sum = tmp * 16777619 ^ (tmp >> 17)`) started from a fixed offset, fed every row then two rows of
zeros; the lanes are XORed, the block number XORed in, and the result folded into 1..65535.
`pd_checksum` counts as zero while hashing. Numpy runs the 32 lanes of many pages at once, and
its ufuncs release the GIL, so several reader threads verify in parallel.

`bad_pages` and `page_checksum` run the C version (`pgpages_native`, built by scripts/setup.sh:
~20x less CPU) when it is there, and the numpy port here otherwise; both follow the same rules.

`bad_pages` follows pgBackRest (src/command/backup/pageChecksum.c): a page whose LSN is at or past
the backup's start LSN is not checked (it may be half-written now, and WAL replay rewrites it from
a full-page image), nor is a new page that is all zeros.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from typing import TYPE_CHECKING

from seawall.postgres import pgpages_native

if TYPE_CHECKING:
    import numpy as np

PAGE = 8192
_ROWS, _LANES = PAGE // (4 * 32), 32
_PRIME = 16777619
_BASE = (
    0x5B1F36E9, 0xB8525960, 0x02AB50AA, 0x1DE66D2A, 0x79FF467A, 0x9BB9F8A3, 0x217E7CD2, 0x83E13D2C,
    0xF8D4474F, 0xE39EB970, 0x42C6AE16, 0x993216FA, 0x7B093B5D, 0x98DAFF3C, 0xF718902A, 0x0B1C9CDB,
    0xE58F764B, 0x187636BC, 0x5D7B3BB1, 0xE73DE7DE, 0x92BEC979, 0xCCA6C0B2, 0x304A0979, 0x85AA43D4,
    0x783125BB, 0x6CA8EAA2, 0xE407EAC6, 0x4B5CFC3E, 0x9FBF8C76, 0x15CA20BE, 0xF2CA9FD3, 0x959BD756,
)


# numpy is imported on first use, not with this module: it costs ~0.1-0.2 s of a backup process's
# start (measured with -X importtime: the largest single import of `seawall backup postgres`), and
# an incremental backup of an unchanged cluster never checks a page. `preload` imports it on a
# thread while the backup waits for the server (connections, the start checkpoint).
@functools.cache
def _np():
    # OpenBLAS (numpy's BLAS) starts a thread per core at import, and they spin while busy: the
    # page checks use no BLAS, and the reader threads already keep every core working.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    import numpy

    return numpy


@functools.cache
def _constants() -> tuple[np.ndarray, np.uint32]:
    np_ = _np()
    return np_.array(_BASE, dtype=np_.uint32), np_.uint32(_PRIME)


def preload() -> None:
    """Load the C checks, or else import numpy, on a daemon thread (the first page check then finds
    them loaded)."""
    threading.Thread(target=_load, name="seawall-pgpages-load", daemon=True).start()


def _load() -> None:
    if not pgpages_native.available():
        _np()


def pages(buf: bytes | bytearray | memoryview) -> np.ndarray:
    """The whole pages of `buf` as a (n, 2048) uint32 array (no copy; a trailing partial page is left out)."""
    n = len(buf) // PAGE
    return _np().frombuffer(buf, dtype="<u4", count=n * PAGE // 4).reshape(n, PAGE // 4)


def page_lsns(words: np.ndarray) -> np.ndarray:
    """pd_lsn of each page of `pages(...)`, as uint64."""
    np = _np()
    return (words[:, 0].astype(np.uint64) << np.uint64(32)) | words[:, 1].astype(np.uint64)


def page_checksums(words: np.ndarray, blocks: np.ndarray | int) -> np.ndarray:
    """pg_checksum_page of each page of `pages(...)` (uint16 values).

    Args:
        words: the pages, from `pages()`.
        blocks: each page's block number (within its relation fork), or the first one's when the
            pages are consecutive.
    """
    np = _np()
    base, prime = _constants()
    n = words.shape[0]
    if isinstance(blocks, int):
        blocks = np.arange(blocks, blocks + n, dtype=np.uint64)
    # Row-major across pages (one contiguous copy): every step below then runs on contiguous
    # arrays, which numpy vectorises (strided rows of 32 words ran at half the speed).
    rows = words.reshape(n, _ROWS, _LANES).transpose(1, 0, 2).copy()  # always a copy: we zero pd_checksum
    rows[0, :, 2] &= np.uint32(0xFFFF0000)  # pd_checksum (low half of word 2) counts as zero
    sums = np.tile(base, (n, 1))
    tmp = np.empty_like(sums)
    for i in range(_ROWS + 2):
        if i < _ROWS:
            np.bitwise_xor(sums, rows[i], out=tmp)
        else:
            tmp[...] = sums  # two extra rounds on zeros
        np.multiply(tmp, prime, out=sums)
        np.right_shift(tmp, 17, out=tmp)
        np.bitwise_xor(sums, tmp, out=sums)
    folded = np.bitwise_xor.reduce(sums, axis=1) ^ blocks.astype(np.uint64).astype(np.uint32)
    return (folded % np.uint32(65535) + np.uint32(1)).astype(np.uint16)


def stored_checksums(words: np.ndarray) -> np.ndarray:
    np = _np()
    return (words[:, 2] & np.uint32(0xFFFF)).astype(np.uint16)


def bad_pages(buf: bytes | bytearray | memoryview, first_block: int, start_lsn: int) -> list[int]:
    """Block numbers of the pages in `buf` whose checksum is wrong (pages to check as described above)."""
    if pgpages_native.available():
        return pgpages_native.bad_pages(buf, first_block, start_lsn)
    return bad_pages_numpy(buf, first_block, start_lsn)


def page_checksum(page: bytes | bytearray | memoryview, block: int) -> tuple[int, int]:
    """(stored pd_checksum, computed pg_checksum_page) of one 8 KiB page: what a report shows."""
    found = int.from_bytes(bytes(page[8:10]), "little")
    if pgpages_native.available():
        return found, pgpages_native.page_checksums(page, block)[0]
    return found, int(page_checksums(pages(page), block)[0])


def bad_pages_numpy(buf: bytes | bytearray | memoryview, first_block: int, start_lsn: int) -> list[int]:
    """`bad_pages` with numpy (no C library)."""
    np = _np()
    words = pages(buf)
    if not len(words):
        return []
    check = page_lsns(words) < np.uint64(start_lsn)
    new = (words[:, 3] >> np.uint32(16)) == 0  # pd_upper == 0: never initialised
    if new.any():
        zero = ~words.any(axis=1)
        check &= ~(new & zero)
        # A "new" page that is not all zeros is damaged (PostgreSQL's PageIsVerified says so too).
        odd = np.flatnonzero(new & ~zero & check)
    else:
        odd = np.empty(0, dtype=np.intp)
    idx = np.flatnonzero(check & ~new)
    if len(idx):
        sub = words[idx]
        wrong = idx[page_checksums(sub, idx + first_block) != stored_checksums(sub)]
    else:
        wrong = idx
    return sorted(int(i) + first_block for i in np.concatenate([wrong, odd]))


def lsn_list(buf: bytes | bytearray | memoryview) -> list[int]:
    """The LSN of each whole page in `buf`, in order.

    Plain Python over a strided view of the two header words of each page (128 pages per 1 MiB
    block: ~20 us), so an incremental backup's block and page tests need no numpy.
    """
    n = len(buf) // PAGE
    if sys.byteorder != "little":  # pd_lsn is read as little-endian words, as `pages` does
        return [int(x) for x in page_lsns(pages(buf))] if n else []
    words = memoryview(buf)[: n * PAGE].cast("B").cast("I")
    step = PAGE // 4
    return [high << 32 | low for high, low in zip(words[0::step], words[1::step], strict=True)]


def max_lsn(buf: bytes | bytearray | memoryview) -> tuple[int, int]:
    """(highest page LSN, lowest page LSN) of the whole pages in `buf`; (0, 0) when there are none."""
    lsns = lsn_list(buf)
    return (max(lsns), min(lsns)) if lsns else (0, 0)
