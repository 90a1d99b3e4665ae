"""Writing a data-directory backup (`source.method = "datadir"`) into a new data directory.

The backup's format is described in `seawall.postgres.datadir_backup`. This writes every tree:
`pgdata` into the data directory, `tablespace-<oid>` into that tablespace's location (the one
`tablespaces.plan_locations` chose); then `backup_label` and `tablespace_map` (with the locations
used) from the manifest, which make PostgreSQL start recovery at the backup's checkpoint and link
`pg_tblspc/<oid>` to the locations. Files are written by `workers` threads, owned by the server OS
user, with the mode and mtime they had; directories get their mode once their files are in. What
was written is recorded (`seawall.sources.delta_hints`) for a later `--delta` restore into it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seawall.manifest import Manifest, StreamRef
from seawall.postgres import binaries
from seawall.postgres.datadir import tree_name
from seawall.postgres.tablespaces import write_map
from seawall.postgres.tarextract import server_owner
from seawall.sources import delta_hints
from seawall.sources.files import _FilePool
from seawall.sources.tree import Entry, iter_entries
from seawall.streams import ChunkReader
from seawall.vault import Vault

Progress = Callable[[int], None]


def is_datadir_backup(manifest: Manifest) -> bool:
    return manifest.source.get("method") == "datadir"


def restore_datadir_files(vault: Vault, manifest: Manifest, datadir: Path, *, progress: Progress | None = None,
                          workers: int = 4, tablespaces: list[tuple[dict[str, Any], Path]] | None = None,
                          rewrite_map: bool = True) -> int:
    """Write the backup's files into `datadir` (and tablespace locations); returns the files written."""
    roots = [(tree_name(None), datadir)] + [(tree_name(ts["oid"]), loc) for ts, loc in tablespaces or []]
    owner = server_owner()
    count = 0
    delta_hints.forget(vault, datadir)
    recorder = delta_hints.Recorder()  # what a later --delta restore into this directory may skip reading
    with ChunkReader(vault, workers=workers, prefetch=12) as reader, ChunkReader(vault, workers=1) as index:
        for name, root in roots:
            dirs = []
            with _FilePool(workers) as pool:  # one pool per tree: its wait() ends it
                for entry in iter_entries(index.iter_stream(manifest.stream(name))):
                    dest = root if entry.path == "." else root / entry.path
                    if entry.type == "d":
                        dest.mkdir(mode=0o700, exist_ok=True)
                        dirs.append((dest, entry))
                    elif entry.type == "l":
                        os.symlink(entry.target, dest)
                        if owner:
                            os.chown(dest, *owner, follow_symlinks=False)
                    elif entry.type == "f":
                        reader.add_patches(entry.patches)
                        pool.submit(_write_file, reader, entry, dest, owner, progress)
                        count += 1
                        if root == datadir:
                            recorder.add(entry.path, entry.chunks)
                pool.wait()
            for dest, entry in reversed(dirs):
                _meta(dest, entry, owner)
    recorder.save(vault, datadir)
    _write_text(datadir / "backup_label", manifest.source["backup_label"], owner)
    if tablespaces and rewrite_map:
        write_map(datadir, tablespaces)
    elif manifest.source.get("tablespace_map"):
        _write_text(datadir / "tablespace_map", manifest.source["tablespace_map"], owner)
    return count


def _write_file(reader: ChunkReader, entry: Entry, dest: Path, owner: tuple[int, int] | None,
                progress: Progress | None) -> None:
    ref = StreamRef(name=entry.path, size=entry.size, hash=entry.hash or "", chunks=entry.chunks)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for data in reader.iter_stream(ref):
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if progress:
                progress(len(data))
    finally:
        os.close(fd)
    _meta(dest, entry, owner)


def _meta(path: Path, entry: Entry, owner: tuple[int, int] | None) -> None:
    if owner:
        os.chown(path, *owner)
    os.chmod(path, entry.mode)
    os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns))


def _write_text(path: Path, text: str, owner: tuple[int, int] | None) -> None:
    path.write_text(text)
    path.chmod(0o600)
    if owner:
        os.chown(path, *owner)
    else:
        binaries.chown_to_server_user(path)


# ---- pg_verifybackup ------------------------------------------------------------------------------
def write_backup_manifest(vault: Vault, manifest: Manifest, datadir: Path) -> int:
    """Write a `backup_manifest` pg_verifybackup reads, listing every file of the backup with its size.

    A data-directory backup has no pg_basebackup manifest; this one is made from the backup's own
    trees, without per-file checksums (pg_verifybackup then checks that every file is there with
    its size and that nothing is extra or missing; the contents were checked against their keyed
    chunk ids as they were written). Returns the number of files listed.
    """
    import hashlib
    import json
    from datetime import UTC, datetime

    roots = [(tree_name(None), "")] + [(tree_name(t["oid"]), f"pg_tblspc/{t['oid']}/")
                                      for t in manifest.source.get("tablespaces") or []]
    lines = []
    with ChunkReader(vault, workers=1) as index:
        for name, prefix in roots:
            for e in iter_entries(index.iter_stream(manifest.stream(name))):
                if e.type == "f":
                    lines.append((prefix + e.path, e.size, e.mtime_ns))
    for extra in ("backup_label", "tablespace_map"):
        if (datadir / extra).exists():
            st = (datadir / extra).stat()
            lines.append((extra, st.st_size, st.st_mtime_ns))

    def when(ns: int) -> str:
        return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S GMT")

    files = ",\n".join(json.dumps({"Path": p, "Size": s, "Last-Modified": when(m)}) for p, s, m in sorted(lines))
    ranges = ",\n".join(json.dumps(r) for r in manifest.source.get("wal_ranges") or [])
    body = (f'{{ "PostgreSQL-Backup-Manifest-Version": 1,\n"Files": [\n{files}\n],\n'
            f'"WAL-Ranges": [\n{ranges}\n],\n')
    text = body + f'"Manifest-Checksum": "{hashlib.sha256(body.encode()).hexdigest()}"}}\n'
    _write_text(datadir / "backup_manifest", text, server_owner())
    return len(lines)
