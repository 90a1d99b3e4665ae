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

Recovery targets and the settings rendered from them live in `seawall.postgres.targets` (re-exported
here).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seawall.errors import ConfigError, IntegrityError, NoSpaceError, PermanentError, SeawallError
from seawall.manifest import BackupStatus, Manifest
from seawall.postgres import binaries
from seawall.postgres.cluster import LocalCluster
from seawall.postgres.datadir_restore import is_datadir_backup, restore_datadir_files
from seawall.postgres.physical import BASE_STREAM, KIND
from seawall.postgres.recovery_modes import CopyOptions as CopyOptions  # re-exported: callers import it here
from seawall.postgres.recovery_modes import ServerStopped, check_wal_path, finish_settings, wait_for_end
from seawall.postgres.restore_delta import (
    check_delta_datadir,
    check_delta_format,
    prepare_delta_datadir,
    write_datadir_delta,
)
from seawall.postgres.tablespaces import MANIFEST as TS_MANIFEST
from seawall.postgres.tablespaces import discard_locations, plan_locations, prepare_locations, write_map
from seawall.postgres.tablespaces import stream_name as ts_stream_name
from seawall.postgres.tarextract import extract_stream
from seawall.postgres.targets import (
    REPLACED_SETTINGS,
    RecoveryTarget,
    archive_command,
    check_target,
    recovery_settings,
    restore_command,
)
from seawall.postgres.targets import TARGET_KINDS as TARGET_KINDS  # re-exported: it lived here
from seawall.postgres.targets import default_seawall_bin as default_seawall_bin  # re-exported: it lived here
from seawall.postgres.wal import WalArchive, check_continuity
from seawall.postgres.walprefetch import WalPrefetcher, spool_dir_for, spooled_command
from seawall.streams import ChunkReader
from seawall.vault import Vault

Progress = Callable[[int], None]


def check_backup(manifest: Manifest) -> None:
    if manifest.kind != KIND:
        raise ConfigError(f"backup {manifest.backup_id} is a {manifest.kind} backup, not a physical one")
    if manifest.status != BackupStatus.DONE:
        raise ConfigError(f"backup {manifest.backup_id} is {manifest.status}, not complete",
                          hint="pick a DONE backup from `seawall list`")


# ---- the data directory ---------------------------------------------------------------------------
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


# ---- running recovery ----------------------------------------------------------------------------
_RESTORED = re.compile(r'restored log file "([0-9A-F]{24})" from archive')


@dataclass
class RecoveryLog:
    """What the server log says about this recovery."""

    text: str

    @property
    def last_restored(self) -> str | None:
        found = _RESTORED.findall(self.text)
        return found[-1] if found else None

    def line(self, needle: str) -> str | None:
        for ln in self.text.splitlines():
            if needle in ln:
                return ln.split(":  ", 1)[-1].strip()
        return None

    def fatal(self) -> str | None:
        """The last FATAL/PANIC of the server itself (not a client refused while it started)."""
        noise = ("the database system is starting up", "the database system is not yet accepting connections",
                 "the database system is shutting down")
        found = [ln for ln in self.text.splitlines()
                 if ("FATAL:" in ln or "PANIC:" in ln) and not any(n in ln for n in noise)]
        return found[-1].split(":  ", 1)[-1].strip() if found else None


def read_log(cluster: LocalCluster, offset: int) -> RecoveryLog:
    try:
        with open(cluster.logfile, "rb") as fh:
            fh.seek(offset)
            return RecoveryLog(fh.read().decode("utf-8", "replace"))
    except OSError:
        return RecoveryLog("")


def _archive_gap(vault: Vault, manifest: Manifest) -> tuple[str | None, str | None]:
    """(first lost segment, newest archived) between the backup's start and the newest WAL."""
    try:
        report = check_continuity(WalArchive(vault), from_segment=manifest.source.get("start_wal_file"),
                                  seg_size=manifest.source.get("wal_segment_size"))
    except (ValueError, SeawallError):
        return None, None
    return (report.lost[0] if report.lost else None), report.newest


def diagnose_failure(log: RecoveryLog, vault: Vault, manifest: Manifest, target: RecoveryTarget,
                     where: str) -> SeawallError:
    """The error for a recovery that stopped the server, from its log and the archive."""
    last = log.last_restored or "none"
    lost, newest = _archive_gap(vault, manifest)
    if log.line("before consistent recovery point"):
        return ConfigError(f"target {target} is before the oldest point backup {manifest.backup_id} can reach "
                           f"({manifest.source.get('stop_lsn')}){where}", hint="pick a later target")
    if lost:
        return IntegrityError(f"PITR to {target} failed: WAL segment {lost} is missing from the archive "
                              f"(last restored: {last}, newest archived: {newest}){where}",
                              hint="the archive is broken there: restore to an earlier target or a newer backup")
    if log.line("recovery ended before configured recovery target was reached"):
        return ConfigError(f"PITR to {target} failed: the target is after the newest archived WAL "
                           f"(last restored: {last}, newest archived: {newest}){where}",
                           hint="pick an earlier target, or archive more WAL (pg_switch_wal()) and retry")
    if log.line("could not locate required checkpoint record") or log.line("WAL ends before"):
        return IntegrityError(f"the WAL backup {manifest.backup_id} needs is missing from the archive "
                              f"({manifest.source.get('start_wal_file')}..{manifest.source.get('stop_wal_file')}, "
                              f"last restored: {last}){where}")
    fatal = log.fatal() or "the server stopped during recovery"
    return PermanentError(f"PITR to {target} failed: {fatal}{where}")


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
    prefetch = WalPrefetcher(vault, manifest, spool_dir_for(path), names=wal_path.segments)
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
        cluster.start(wait=False)
        wait_for_end(cluster, mode, timeout)  # the path to the target was checked whole before: no hole
    except ServerStopped:
        error = diagnose_failure(read_log(cluster, offset), vault, manifest, target, where)
        _abandon(cluster, existed)
        raise error from None
    except BaseException:
        _abandon(cluster, existed)
        raise
    return offset


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
            "last_transaction": log.line("last completed transaction"), "timeline": _new_timeline(log),
            "running": running, "seconds": round(seconds, 3), "logfile": str(cluster.logfile)}


def _new_timeline(log: RecoveryLog) -> int | None:
    line = log.line("selected new timeline ID")
    m = re.search(r"selected new timeline ID: (\d+)", line or "")
    return int(m[1]) if m else None
