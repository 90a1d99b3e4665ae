"""Making a local store's writes durable: one file or directory (`fsync_path`), or a whole file
system at once (`syncfs`), which `LocalStore.commit` keeps for large batches only."""

from __future__ import annotations

import contextlib
import ctypes
import os
from pathlib import Path


def early_writeback(root: Path) -> None:
    with contextlib.suppress(OSError):  # only a head start: commit's own syncfs reports errors
        syncfs(root)


SYNC_EACH_MAX = 64  # objects a commit syncs one by one (a journal commit each, ~1 ms); more: syncfs


def fsync_path(path: str, flags: int, *, data_only: bool = False) -> None:
    fd = os.open(path, flags)
    try:
        (os.fdatasync if data_only else os.fsync)(fd)
    finally:
        os.close(fd)


def syncfs(path: Path) -> None:
    """Flush the whole file system holding `path` in one call (Linux syncfs(2); else sync(2))."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _LIBC is None or _LIBC.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def _load_libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _load_libc()
