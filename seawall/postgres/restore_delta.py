"""What a `--delta` physical restore checks before it touches an existing data directory.

A delta restore removes every file the backup lacks and rewrites the ones that differ
(`seawall.sources.delta`), so the directory it is pointed at must be safe to treat that way:

- no server may be running on it: a `postmaster.pid` whose pid is alive refuses the restore (a stale
  one, left by a crash, is removed like any file the backup lacks). A pid reused by an unrelated
  process also refuses: the message says to remove the stale file then.
- it must be a data directory (`global/pg_control`), or empty, or absent: `--to-datadir /srv
  --delta` must not wipe a folder that merely exists. `force` accepts it anyway.
- it must be the backup's own cluster: the system identifier in `global/pg_control` (its first 8
  bytes, `ControlFileData.system_identifier`) must equal the backup's. Another cluster's directory
  (a standby rebuilt from another primary, a typo in the path) is refused unless `force`.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path

from seawall.errors import ConfigError
from seawall.manifest import Manifest
from seawall.postgres import binaries
from seawall.postgres.datadir import tree_name
from seawall.postgres.datadir_restore import is_datadir_backup
from seawall.sources.delta import DeltaStats, check_delta_root, restore_tree_delta
from seawall.vault import Vault

PG_CONTROL = "global/pg_control"


def running_pid(datadir: Path) -> int | None:
    """The pid in `postmaster.pid` if that process is alive (or not ours to signal), else None."""
    try:
        pid = int((datadir / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's
        return pid
    return pid


def system_identifier(datadir: Path) -> str | None:
    """The cluster's system identifier from `global/pg_control`, None if there is no readable one."""
    try:
        with open(datadir / PG_CONTROL, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return None
    return str(struct.unpack("<Q", head)[0]) if len(head) == 8 else None


def check_delta_datadir(datadir: str | os.PathLike, manifest: Manifest, *, force: bool = False) -> Path:
    """The absolute data directory a delta restore of `manifest` may update; ConfigError (exit 2) if not.

    Raises:
        ConfigError: a server is running on it; it is a non-empty folder without `global/pg_control`,
            or the data directory of another cluster (both unless `force`); it is a link or a file.
    """
    path = check_delta_root(datadir)
    if not path.exists() or not any(path.iterdir()):
        return path
    pid = running_pid(path)
    if pid is not None:
        raise ConfigError(f"PostgreSQL is running on {path} (postmaster.pid: pid {pid}): a delta restore needs "
                          "it stopped", hint=f"stop it first (pg_ctl stop -D {path}); if no server runs there, "
                          "remove the stale postmaster.pid")
    found = system_identifier(path)
    if force:
        return path
    if found is None:
        raise ConfigError(f"{path} is not empty and is not a PostgreSQL data directory (no readable {PG_CONTROL})",
                          hint="point --to-datadir at the cluster's data directory, or add --force to replace "
                          "everything in this folder")
    wanted = str(manifest.source.get("system_identifier") or "")
    if wanted and found != wanted:
        raise ConfigError(f"{path} is the data directory of another cluster (system identifier {found}; backup "
                          f"{manifest.backup_id} is of {wanted})",
                          hint="check the path; --force replaces that cluster's files with the backup's")
    return path


def check_delta_format(manifest: Manifest) -> None:
    """ConfigError unless the backup lists its files one by one (what a delta compares against)."""
    if not is_datadir_backup(manifest):
        raise ConfigError(f"backup {manifest.backup_id} is one pg_basebackup tar stream: --delta needs a backup "
                          "read file by file from the data directory (--method datadir, the default)",
                          hint="restore it into a new or empty directory, or take a new physical backup")
    if manifest.source.get("tablespaces"):
        # A tablespace location may hold other clusters' version directories (pg_upgrade): removing
        # what the backup lacks there needs rules of its own, not written yet.
        names = ", ".join(str(t.get("name")) for t in manifest.source["tablespaces"])
        raise ConfigError(f"backup {manifest.backup_id} has tablespaces ({names}): --delta restores data "
                          "directories without tablespaces only",
                          hint="restore into a new directory (--tablespace-map OLD=NEW for new locations)")


def write_datadir_delta(vault: Vault, manifest: Manifest, datadir: Path, *, jobs: int = 3,
                        trust_mtime: bool = False, progress: Callable[[int], None] | None = None) -> DeltaStats:
    """Bring `datadir` to the backup's files (`seawall.sources.delta` on its `pgdata` tree), then write
    the `backup_label` (and `tablespace_map`) `pg_backup_stop` returned, as a full restore does."""
    from seawall.postgres.tarextract import server_owner

    owner = server_owner()
    stats = restore_tree_delta(vault, manifest, datadir, workers=jobs, trust_mtime=trust_mtime, progress=progress,
                               stream=tree_name(None), owner=owner, hints=True)
    for name in ("backup_label", "tablespace_map"):
        if manifest.source.get(name):
            path = datadir / name
            path.write_text(manifest.source[name])
            path.chmod(0o600)
            binaries.chown_to_server_user(path)
    return stats


def prepare_delta_datadir(datadir: str | os.PathLike) -> tuple[Path, None]:
    """Create the data directory if missing and make it 0700 for the server user; (path, None): on a
    failure the directory stays (`recovery.discard_datadir`), a delta restore run again finishes it."""
    path = Path(datadir).absolute()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    binaries.chown_to_server_user(path)
    return path, None
