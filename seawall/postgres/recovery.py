"""Point-in-time restore of a physical backup into a new data directory.

Steps: refuse a non-empty target (data directory and tablespace locations) and a WAL path with a
hole; extract `base.tar` (and each tablespace's tar) streaming from the vault (no local copy;
`seawall.postgres.tarextract` refuses members that would land outside the data directory); write
`recovery.signal` (or `standby.signal`) and the recovery settings (`restore_command = seawall
wal-get ...`, the target, timeline and action; archiving into the same vault once promoted, or off;
never the original's archive_command or primary_conninfo); start the copy and wait until it is
promoted, paused, shut down at the target, or a running standby (`seawall.postgres.recovery_modes`).

A restore never reports a partial result as success: before anything is written, every WAL file on
the path to the target along the chosen timeline must be archived (`recovery_modes.check_wal_path`:
a `latest` restore cannot stop at a hole, nor read another timeline's segment in its place), and
PostgreSQL's own failures ("recovery ended before configured recovery target was reached"...) are
read from the server log. On failure the half-restored data directory is removed (its log stays).

Recovery targets and the settings rendered from them live in `seawall.postgres.targets`, the data
directory's preparation and filling in `recovery_files`, reading the server log in `recovery_log`
(the names callers imported from here are re-exported).
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

from seawall.errors import ConfigError, NoSpaceError, PermanentError
from seawall.manifest import BackupStatus, Manifest
from seawall.postgres import binaries
from seawall.postgres.cluster import LocalCluster
from seawall.postgres.physical import KIND
from seawall.postgres.recovery_files import Progress as Progress  # re-exported: it lived here
from seawall.postgres.recovery_files import discard_datadir, prepare_datadir, require_empty, write_recovery_config
from seawall.postgres.recovery_files import drop_settings as drop_settings  # re-exported: it lived here
from seawall.postgres.recovery_files import extract_base as extract_base  # re-exported: checks import it here
from seawall.postgres.recovery_log import RecoveryLog, diagnose_failure, new_timeline, read_log
from seawall.postgres.recovery_modes import CopyOptions as CopyOptions  # re-exported: callers import it here
from seawall.postgres.recovery_modes import ServerStopped, check_wal_path, finish_settings, wait_for_end
from seawall.postgres.restore_delta import (
    check_delta_datadir,
    check_delta_format,
    prepare_delta_datadir,
    write_datadir_delta,
)
from seawall.postgres.tablespaces import discard_locations, plan_locations, prepare_locations
from seawall.postgres.targets import REPLACED_SETTINGS as REPLACED_SETTINGS  # re-exported: it lived here
from seawall.postgres.targets import TARGET_KINDS as TARGET_KINDS  # re-exported: it lived here
from seawall.postgres.targets import (
    RecoveryTarget,
    archive_command,
    check_target,
    recovery_settings,
    restore_command,
)
from seawall.postgres.targets import default_seawall_bin as default_seawall_bin  # re-exported: it lived here
from seawall.postgres.walprefetch import WalPrefetcher, spool_dir_for, spooled_command
from seawall.vault import Vault


def check_backup(manifest: Manifest) -> None:
    if manifest.kind != KIND:
        raise ConfigError(f"backup {manifest.backup_id} is a {manifest.kind} backup, not a physical one")
    if manifest.status != BackupStatus.DONE:
        raise ConfigError(f"backup {manifest.backup_id} is {manifest.status}, not complete",
                          hint="pick a DONE backup from `seawall list`")


def _passphrase_file(datadir: Path, passphrase: str) -> Path:
    path = datadir.parent / f".{datadir.name}.seawall-passphrase"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(passphrase)
    binaries.chown_to_server_user(path)
    return path


def restore_physical(vault: Vault, manifest: Manifest, datadir: str | os.PathLike, *, port: int | None = None,
                     target: RecoveryTarget | None = None, vault_url: str | None = None,
                     passphrase_file: str | os.PathLike | None = None, passphrase: str | None = None,
                     leave_running: bool = True, timeout: float = 3600, seawall_bin: str | None = None,
                     progress: Progress | None = None, copy: CopyOptions | None = None) -> dict[str, Any]:
    """Restore a physical backup into a new data directory and recover it to `target`.

    Before anything is written, the WAL path to the target along the chosen timeline is checked
    (`seawall.postgres.recovery_modes.check_wal_path`).

    Args:
        vault: the opened vault holding the backup and the WAL archive.
        manifest: the DONE manifest of a `postgres-physical` backup.
        datadir: the new data directory (must not exist, or be empty).
        port: port for the restored server (default: a free one).
        target: where recovery stops, on which timeline, and what then (default: latest, promote).
        vault_url: URL `wal-get` / `wal-push` open (default: the vault's own).
        passphrase_file: file `wal-get` reads the passphrase from (readable by the server user).
        passphrase: alternatively the passphrase itself: written to a 0600 file next to the data
            directory; removed after recovery unless the copy still needs it (archiving, standby,
            paused or shut down at the target).
        leave_running: keep the server running (else stop it cleanly).
        timeout: seconds recovery may take.
        seawall_bin: the `seawall` executable for restore_command / archive_command.
        progress: called with the number of base-backup bytes read.
        copy: archiving once promoted, standby mode, tablespace locations (default: none of them).

    Returns:
        A summary: datadir, port, conninfo, target, timeline, last restored segment, seconds.

    Raises:
        ConfigError: non-empty datadir, a target before the backup or after the newest WAL, a
            timeline the archive lacks or that branched before the backup's end.
        IntegrityError: a WAL file on the path to the target is missing from the archive.
        NoSpaceError: the disk filled while extracting (the datadir is removed).
    """
    target, copy = target or RecoveryTarget(), copy or CopyOptions()
    check_backup(manifest)
    check_target(target, manifest)
    copy.check(target)
    if passphrase_file is None and passphrase is None:
        raise ConfigError("restore_command needs the vault passphrase", hint="pass passphrase_file or passphrase")
    if copy.delta:  # the one exception to "new or empty": a stopped data directory of this cluster
        check_delta_datadir(datadir, manifest, force=copy.force)
        check_delta_format(manifest)
    else:
        require_empty(datadir)
    ts_plan = plan_locations(manifest, copy.tablespace_map)  # every location new or empty
    wal_path = check_wal_path(vault, manifest, target, standby=copy.standby)
    started, mode = time.monotonic(), copy.mode(target)
    path, existed = prepare_delta_datadir(datadir) if copy.delta else prepare_datadir(datadir)
    temp_pass = _passphrase_file(path, passphrase) if passphrase_file is None else None
    pass_file = passphrase_file or temp_pass
    url = vault_url or vault.url
    plain = restore_command(url, pass_file, seawall_bin)
    prefetch = WalPrefetcher(vault, manifest, spool_dir_for(path), names=wal_path.segments,
                             path_only=target.kind == "immediate" and not copy.standby)
    settings = recovery_settings(target, spooled_command(prefetch.spool, plain), port,
                                 timeline=None if copy.standby else wal_path.timeline,
                                 archive=archive_command(url, pass_file, seawall_bin) if copy.archive else "",
                                 primary_conninfo=copy.primary_conninfo)
    keep_pass = copy.archive or mode != "promote"
    try:
        cluster, offset, files = _restore_into(vault, manifest, path, existed, settings, target, mode, timeout,
                                               progress, prefetch, copy, ts_plan)
        finish_settings(cluster, None if mode == "promote" else plain)
        if not leave_running:
            cluster.stop()
    except BaseException:
        keep_pass = False
        raise
    finally:
        prefetch.close()
        if temp_pass is not None and not keep_pass:
            temp_pass.unlink(missing_ok=True)
    return _summary(cluster, read_log(cluster, offset), manifest, target, leave_running and cluster.is_running(),
                    time.monotonic() - started) | {"timeline_followed": wal_path.timeline, "mode": mode,
                                                   "archiving": copy.archive, "files": files}


def _restore_into(vault: Vault, manifest: Manifest, path: Path, existed: bool | None, settings: dict[str, Any],
                  target: RecoveryTarget, mode: str, timeout: float, progress: Progress | None,
                  prefetch: WalPrefetcher, copy: CopyOptions,
                  ts_plan: list[tuple[dict[str, Any], Path]]) -> tuple[LocalCluster, int, dict[str, int]]:
    prefetch.start()  # fetch the first segments while the base backup is extracted
    # `pg_config --bindir` (a shell script, ~15 ms) answers before pg_ctl needs the directory.
    threading.Thread(target=_find_bindir, name="seawall-pg-bindir", daemon=True).start()
    made: list[tuple[Path, bool]] = []
    try:
        made = prepare_locations(ts_plan)
        files = _write_files(vault, manifest, path, progress, copy, ts_plan)
        cluster = write_recovery_config(path, settings, standby=copy.standby)
    except OSError as exc:
        discard_datadir(path, existed)
        discard_locations(made)
        if exc.errno == errno.ENOSPC:
            raise NoSpaceError(f"no space left on the device of {path} while extracting backup "
                               f"{manifest.backup_id}; the partial data directory was "
                               + ("left in place" if existed is None else "removed"),
                               hint="free space (or pick another disk) and restore again") from None
        raise PermanentError(f"cannot write the data directory {path}: {exc}") from None
    except BaseException:
        discard_datadir(path, existed)
        discard_locations(made)
        raise
    try:
        offset = _recover(cluster, vault, manifest, target, mode, timeout, existed)
    except BaseException:
        discard_locations(made)
        raise
    return cluster, offset, files


def _find_bindir() -> None:
    with contextlib.suppress(Exception):  # the real call reports it
        binaries.bindir()


def _write_files(vault: Vault, manifest: Manifest, path: Path, progress: Progress | None, copy: CopyOptions,
                 ts_plan: list[tuple[dict[str, Any], Path]]) -> dict[str, int]:
    """The backup's files into `path`: all of them, or (`copy.delta`) what differs; returns the counts."""
    if copy.delta:
        return write_datadir_delta(vault, manifest, path, jobs=copy.jobs, trust_mtime=copy.trust_mtime,
                                   progress=progress).as_dict()
    written = extract_base(vault, manifest, path, progress=progress, tablespaces=ts_plan, workers=copy.jobs + 1)
    return {"files": written, "files_written": written}


def _recover(cluster: LocalCluster, vault: Vault, manifest: Manifest, target: RecoveryTarget, mode: str,
             timeout: float, existed: bool | None) -> int:
    """Start the copy and wait for the end `mode` asks for; returns where this run's server log begins."""
    offset = cluster.logfile.stat().st_size if cluster.logfile.exists() else 0
    where = f" (server log: {cluster.logfile})"
    try:
        # psycopg (~65 ms of imports, mostly holding the GIL) is first needed to wait for the copy's
        # end. Imported on a thread while the files were written, it slowed them: a delta restore's
        # walk that removes what the backup lacks (an lstat per file, each a GIL release) took
        # 0.19-0.22 s beside it, 0.06-0.10 s without (1 GB cluster, gated dev runs). Here it runs
        # while pg_ctl starts the server (a subprocess wait) and recovery runs (~0.15 s).
        threading.Thread(target=importlib.import_module, args=("psycopg",), name="seawall-psycopg-import",
                         daemon=True).start()
        cluster.start(wait=False, once=_FIRST_START)
        wait_for_end(cluster, mode, timeout)  # the path to the target was checked whole before: no hole
    except ServerStopped:
        error = diagnose_failure(read_log(cluster, offset), vault, manifest, target, where)
        _abandon(cluster, existed)
        raise error from None
    except BaseException:
        _abandon(cluster, existed)
        raise
    return offset


# A restored data directory starts as a crashed one: PostgreSQL first makes every file durable. Its
# default (`fsync`) opens and fsyncs each of them: 0.13-0.16 s for the 1,331 files of a 300 MB
# datagen cluster with nothing left to write, against 0.01-0.03 s for `syncfs` (one call per file
# system; measured from the server log, "interrupted" to "redo starts"), in every restore, full or
# delta. For this first start only: the copy's own configuration keeps its default, since syncfs
# also flushes other programs' writes on a shared file system. (Linux only; before kernel 5.8
# syncfs did not report write errors.)
_FIRST_START = {"recovery_init_sync_method": "syncfs"} if sys.platform.startswith("linux") else {}


def _abandon(cluster: LocalCluster, existed: bool | None) -> None:
    if cluster.is_running():
        cluster.stop("immediate")
    discard_datadir(cluster.datadir, existed)
    shutil.rmtree(cluster.socket_dir, ignore_errors=True)


def _summary(cluster: LocalCluster, log: RecoveryLog, manifest: Manifest, target: RecoveryTarget, running: bool,
             seconds: float) -> dict[str, Any]:
    return {"backup_id": manifest.backup_id, "datadir": str(cluster.datadir), "port": cluster.port,
            "conninfo": cluster.conninfo(), "socket_dir": str(cluster.socket_dir), "target": str(target),
            "last_restored_wal": log.last_restored, "recovery_stop": log.line("recovery stopping"),
            "last_transaction": log.line("last completed transaction"), "timeline": new_timeline(log),
            "running": running, "seconds": round(seconds, 3), "logfile": str(cluster.logfile)}
