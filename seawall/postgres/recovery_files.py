"""The restored data directory: made empty for the server user, filled from the vault, configured
for recovery, and removed again if the restore fails (so a partial copy never looks like a result).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from seawall.errors import ConfigError
from seawall.manifest import Manifest
from seawall.postgres import binaries
from seawall.postgres.cluster import LocalCluster
from seawall.postgres.datadir_restore import is_datadir_backup, restore_datadir_files
from seawall.postgres.physical import BASE_STREAM
from seawall.postgres.tablespaces import MANIFEST as TS_MANIFEST
from seawall.postgres.tablespaces import stream_name as ts_stream_name
from seawall.postgres.tablespaces import write_map
from seawall.postgres.tarextract import extract_stream
from seawall.postgres.targets import REPLACED_SETTINGS
from seawall.streams import ChunkReader
from seawall.vault import Vault

Progress = Callable[[int], None]


def require_empty(directory: str | os.PathLike, what: str = "data directory") -> Path:
    """The absolute path of `directory`; ConfigError if it exists and is not an empty directory."""
    path = Path(directory).absolute()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(f"{what} {path} is not empty", hint="restore into a new or empty directory")
    return path


def prepare_datadir(datadir: str | os.PathLike) -> tuple[Path, bool]:
    """Create `datadir` 0700 for the server user; returns (path, whether it existed empty).

    Raises:
        ConfigError: it exists and is not an empty directory (nothing is touched).
    """
    path = require_empty(datadir)
    existed = path.exists()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    binaries.chown_to_server_user(path)
    return path, existed


def discard_datadir(path: Path, keep_empty: bool | None) -> None:
    """Remove a half-restored data directory (recreated empty if it existed before); None: leave it
    (a delta restore's directory was the user's; running the restore again finishes it)."""
    if keep_empty is None:
        return
    shutil.rmtree(path, ignore_errors=True)
    if keep_empty:
        path.mkdir(mode=0o700, exist_ok=True)
        binaries.chown_to_server_user(path)


def extract_base(vault: Vault, manifest: Manifest, datadir: Path, *, progress: Progress | None = None,
                 workers: int = 4, writeback: bool = True,
                 tablespaces: list[tuple[dict[str, Any], Path]] | None = None, rewrite_map: bool = True) -> int:
    """Stream `base.tar` from the vault into `datadir`; returns the number of members extracted.

    The chunks go straight into the files (`seawall.postgres.tarextract`, not tarfile: see there
    why), owned by the server OS user; the stream's size and hash are checked at its end.
    `writeback=False` for a copy that is deleted soon (verification): no disk writes started early.
    `tablespaces` (`tablespaces.plan_locations`, locations prepared): each tablespace's tar goes into
    its location and `tablespace_map` is rewritten to point there (unless `rewrite_map` is False:
    pg_verifybackup checks that file too); the backup's separate `backup_manifest`, if any, is written.
    """
    if is_datadir_backup(manifest):  # files, not a tar: see seawall.postgres.datadir_backup for the format
        return restore_datadir_files(vault, manifest, datadir, progress=progress, workers=workers,
                                     tablespaces=tablespaces, rewrite_map=rewrite_map)
    members = 0
    with ChunkReader(vault, workers=workers, prefetch=12) as reader:
        chunks = reader.iter_stream(manifest.stream(BASE_STREAM))
        members += extract_stream(_counted(chunks, progress) if progress else chunks, datadir, writeback=writeback)
        for ts, location in tablespaces or []:
            chunks = reader.iter_stream(manifest.stream(ts_stream_name(ts["oid"])))
            members += extract_stream(_counted(chunks, progress) if progress else chunks, location,
                                      writeback=writeback)
        if any(s.name == TS_MANIFEST for s in manifest.streams):
            with open(datadir / TS_MANIFEST, "wb") as out:
                for chunk in reader.iter_stream(manifest.stream(TS_MANIFEST)):
                    out.write(chunk)
            binaries.chown_to_server_user(datadir / TS_MANIFEST)
    if tablespaces and rewrite_map:
        write_map(datadir, tablespaces)
    return members


def _counted(chunks: Iterator[bytes], progress: Progress) -> Iterator[bytes]:
    for chunk in chunks:
        progress(len(chunk))
        yield chunk


def drop_settings(conf: Path, pattern: re.Pattern[str]) -> None:
    """Remove copied settings we replace: PostgreSQL refuses two recovery targets even if one is ''."""
    if conf.exists():
        lines = conf.read_text().splitlines(keepends=True)
        conf.write_text("".join(ln for ln in lines if not pattern.match(ln)))


def write_recovery_config(datadir: Path, settings: dict[str, Any], *, standby: bool = False) -> LocalCluster:
    cluster = LocalCluster(datadir, settings.get("port"), socket_dir=str(datadir.parent / f"{datadir.name}.sock"))
    cluster.socket_dir.mkdir(mode=0o700, exist_ok=True)
    binaries.chown_to_server_user(cluster.socket_dir)
    drop_settings(datadir / "postgresql.auto.conf", REPLACED_SETTINGS)
    cluster.configure({**settings, "port": cluster.port})
    signal_file = datadir / ("standby.signal" if standby else "recovery.signal")
    signal_file.touch()
    binaries.chown_to_server_user(signal_file)
    (datadir / ("recovery.signal" if standby else "standby.signal")).unlink(missing_ok=True)
    return cluster
