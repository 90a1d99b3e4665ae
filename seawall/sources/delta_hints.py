"""What a restore left in a folder, so that the next `--delta` restore reads only what changed since.

A delta restore must know what each existing file holds. Reading and hashing every file tells it
exactly, at ~1 s per GB here. But most files of a restored data directory are exactly as the last
restore wrote them, and the kernel can say so: any write, truncate, chmod, chown, utime, rename or
link sets a file's ctime to the current time, and nothing in user space can set it back. So at the
end of a restore we record, per file, its inode, size, mtime and ctime and the chunks it was given
(the backup's, 1 MiB each for a data directory). A later delta restore that finds a file with the
same four values knows its content without reading it: it compares the recorded chunks with the new
backup's (by offset) and writes only those that differ. Every other file is read and hashed as before.

Racing writes: file timestamps come from a coarse clock (a kernel tick, 1-10 ms). A write in the same
tick as our last change could leave the ctime we recorded. So after recording, we wait until the clock
is `MARGIN_NS` past the newest recorded ctime before the restore returns (and so before the server
starts): any later change gets a later ctime. Not covered: the system clock stepped back by the
seconds between two restores (a change could then land on a recorded ctime), and bytes changed below
the file system (a raw disk write, a corrupted block): `--delta` without hints (delete the file
below, or `SEAWALL_CACHE_DIR=off`) reads everything.

Where: `<cache>/<vault-id>/restored/<blake3 of the folder's path>.json` (`seawall.vault.cache`:
`$SEAWALL_CACHE_DIR`, `off` disables it). The first line is a keyed BLAKE3 (the vault's chunk-id
key) of the rest: a file changed by anyone without the key, or cut short, is ignored. A restore
deletes its folder's hints before it changes anything, and writes new ones at its end: an
interrupted restore leaves none. Folders over `MAX_FILES` files or `MAX_CHUNKS` chunks get no hints
(memory stays bounded: the delta then reads everything, as before).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

import blake3

from seawall.manifest import ChunkRef
from seawall.vault import Vault
from seawall.vault.cache import cache_root

VERSION = 1
MARGIN_NS = 20_000_000  # two ticks of a 100 Hz kernel clock
MAX_FILES = 200_000
MAX_CHUNKS = 500_000  # ~500 GB of data directory in 1 MiB chunks; ~60 MB of hints in memory


def hints_path(vault: Vault, root: Path) -> Path | None:
    base = cache_root()
    if base is None:
        return None
    name = blake3.blake3(str(root.absolute()).encode()).hexdigest()[:32]
    return base / vault.config.vault_id / "restored" / f"{name}.json"


class RestoreHints:
    """The files of one folder as the last restore into it left them."""

    def __init__(self, files: dict[str, list]):
        self.files = files

    def content(self, path: str, st: os.stat_result) -> list[ChunkRef] | None:
        """The chunks `path` holds if it is untouched since the restore that recorded it, else None."""
        rec = self.files.get(path)
        if rec is None or rec[:4] != [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]:
            return None
        return [(c[0], c[1]) for c in rec[4]]


def load(vault: Vault, root: Path) -> RestoreHints | None:
    """The hints recorded for `root` by a restore from this vault, None if none (or not intact)."""
    path = hints_path(vault, root)
    try:
        mac, _, body = path.read_bytes().partition(b"\n") if path else (b"", b"", b"")
    except OSError:
        return None
    if not body or mac.decode(errors="replace") != vault.keyring.chunk_id(body):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if data.get("version") != VERSION or data.get("root") != str(root.absolute()):
        return None
    return RestoreHints(data["files"])


def forget(vault: Vault, root: Path) -> None:
    """Drop `root`'s hints: called before a restore changes anything there."""
    path = hints_path(vault, root)
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()


class Recorder:
    """Collects (path, chunks) of the files a restore writes, then `save`s the hints at its end."""

    def __init__(self) -> None:
        self.files: list[tuple[str, list[ChunkRef]]] = []
        self.chunks = 0
        self.over = False

    def add(self, path: str, chunks: list[ChunkRef]) -> None:
        if self.over:
            return
        self.files.append((path, chunks))
        self.chunks += len(chunks)
        if len(self.files) > MAX_FILES or self.chunks > MAX_CHUNKS:
            self.over, self.files = True, []

    def save(self, vault: Vault, root: Path) -> bool:
        """Stat every collected file under `root` and write the hints; False if none were kept."""
        path = hints_path(vault, root)
        if path is None or self.over:
            return False
        files, newest = {}, 0
        for rel, chunks in self.files:
            try:
                st = os.lstat(root / rel)
            except OSError:
                continue
            files[rel] = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, chunks]
            newest = max(newest, st.st_ctime_ns)
        body = json.dumps({"version": VERSION, "root": str(root.absolute()), "files": files},
                          separators=(",", ":")).encode()
        _wait_past(newest + MARGIN_NS)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(vault.keyring.chunk_id(body).encode() + b"\n" + body)
            os.replace(tmp, path)
        except OSError:  # a cache: a restore does not fail for it
            return False
        return True


def _wait_past(ns: int) -> None:
    """Sleep until the wall clock is past `ns` (see the module docstring: racing writes)."""
    while (now := time.time_ns()) <= ns:
        time.sleep((ns - now) / 1e9 + 0.001)


def chunk_offsets(chunks: Iterable[ChunkRef]) -> dict[int, ChunkRef]:
    """{offset: chunk} of a file's chunk list."""
    out, offset = {}, 0
    for ref in chunks:
        out[offset] = (ref[0], ref[1])
        offset += ref[1]
    return out
