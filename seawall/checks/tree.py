"""File-tree check: a restored folder against the backup's tree index, file by file.

Every entry of the index must be present with its type, mode, symlink target, size and BLAKE3
content hash (the plaintext hash recorded at backup time); entries the index does not list are
reported too. Content is hashed from disk after the restore, so it checks what was written, not
what was read from the vault.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import blake3

from seawall.checks import CheckResult, result
from seawall.manifest import Manifest
from seawall.sources.files import iter_tree
from seawall.sources.tree import Entry
from seawall.streams import ChunkReader
from seawall.vault import Vault

NAME = "file-tree"
_TYPES = {"f": stat.S_ISREG, "d": stat.S_ISDIR, "l": stat.S_ISLNK, "h": stat.S_ISREG, "p": stat.S_ISFIFO,
          "c": stat.S_ISCHR, "b": stat.S_ISBLK}
_NAMES = {"f": "file", "d": "directory", "l": "symlink", "h": "hard link", "p": "fifo", "c": "character device",
          "b": "block device"}


def file_hash(path: Path) -> str:
    digest = blake3.blake3()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def entry_problem(root: Path, entry: Entry) -> str | None:
    """What is wrong with `entry` under `root`, or None."""
    path = root if entry.path == "." else root / entry.path
    try:
        st = os.lstat(path)
    except OSError:
        return f"{entry.path}: missing"
    if entry.type not in _TYPES:
        return f"{entry.path}: unknown entry type {entry.type!r} (a newer seawall wrote this backup)"
    if not _TYPES[entry.type](st.st_mode):
        return f"{entry.path}: not a {_NAMES[entry.type]}"
    if entry.type == "l":
        return None if os.readlink(path) == entry.target else f"{entry.path}: symlink target differs"
    if entry.type == "h":
        same = os.path.samefile(path, root / entry.target) if os.path.lexists(root / entry.target) else False
        return None if same else f"{entry.path}: not a hard link to {entry.target}"
    if stat.S_IMODE(st.st_mode) != entry.mode and entry.path != ".":
        return f"{entry.path}: mode {stat.S_IMODE(st.st_mode):o} != recorded {entry.mode:o}"
    if entry.type == "f":
        if st.st_size != entry.size:
            return f"{entry.path}: size {st.st_size} != recorded {entry.size}"
        if entry.hash and file_hash(path) != entry.hash:
            return f"{entry.path}: content hash differs"
    return None


def _on_disk(root: Path) -> set[str]:
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            found.add(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
    return found


def check_tree(vault: Vault, manifest: Manifest, root: str | os.PathLike) -> list[CheckResult]:
    """Compare the restored folder `root` with the backup's index; one result for the whole tree.

    Example:
        >>> check_tree(vault, manifest, "/tmp/seawall-verify-x/tree")[0].ok  # doctest: +SKIP
        True
    """
    start = time.monotonic()
    root = Path(root)
    problems, listed, files = [], {"."}, 0
    with ChunkReader(vault) as reader:
        for entry in iter_tree(vault, manifest, reader):
            listed.add(entry.path)
            files += entry.type == "f"
            problem = entry_problem(root, entry)
            if problem:
                problems.append(problem)
    problems += [f"{p}: not in the backup" for p in sorted(_on_disk(root) - listed)]
    detail = "; ".join(problems[:10]) + (f" (and {len(problems) - 10} more)" if len(problems) > 10 else "") \
        if problems else f"{files} files match their recorded size and BLAKE3 hash"
    return [result(NAME, None, not problems, detail, time.monotonic() - start)]
