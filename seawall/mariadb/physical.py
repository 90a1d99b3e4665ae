"""Physical MariaDB backups with `mariadb-backup --stream=xbstream`, and their restore.

Backup: `mariadb-backup --backup --stream=xbstream` copies the data directory of a running server
(hot: InnoDB redo is copied alongside, BACKUP STAGE locks keep the non-InnoDB tables consistent)
and its stdout is chunked straight into the vault as one stream; nothing is spooled locally. It
reads the data files, so it runs on the database host, as root or the server's OS user.
The binlog position of the backup's consistency point (logged by mariadb-backup) is recorded: the
start of a point-in-time restore.

Restore: the stream is fed from the vault into `mbstream -x` in a new directory, then
`mariadb-backup --prepare` applies the redo; the result is a data directory a `mariadbd` starts on.
A restore that fails removes the directory: nothing half-restored is left.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seawall.errors import ConfigError, IntegrityError
from seawall.lifecycle import recording
from seawall.manifest import BackupStatus, Manifest, new_manifest
from seawall.mariadb.conn import MyConn, translate_pymysql_errors
from seawall.mariadb.logical import feed_tool, tool_error
from seawall.mariadb.server import chown_to_server_user, tool
from seawall.streams import ChunkReader, ChunkWriter
from seawall.vault import Vault

KIND = "mariadb-physical"
STREAM = "backup.xbstream"
Progress = Callable[[int], None]
_POSITION = re.compile(r"binlog position: filename '([^']+)', position '(\d+)'(?:, GTID of the last change '([^']*)')?")


def _facts(conn: MyConn) -> dict[str, Any]:
    with conn.connect(database="") as my, my.cursor() as cur, \
            translate_pymysql_errors(f"reading facts of {conn.display()}"):
        cur.execute("SELECT VERSION(), @@log_bin, @@server_id, @@datadir")
        version, log_bin, server_id, datadir = cur.fetchone()
    return {"server_version": version, "log_bin": bool(log_bin), "server_id": server_id, "datadir": datadir}


def binlog_position(log: str) -> dict[str, Any] | None:
    """The consistency point's binlog file/position from mariadb-backup's log."""
    match = _POSITION.search(log)
    if not match:
        return None
    return {"file": match[1], "position": int(match[2]), "gtid": match[3]}


def backup_physical(vault: Vault, conn: MyConn | str, dataset: str, *, backup_id: str | None = None,
                    progress: Progress | None = None, workers: int = 3) -> Manifest:
    """A hot physical backup of the whole server as a new `mariadb-physical` backup.

    Example:
        >>> backup_physical(vault, "mysql://backup@localhost/?socket=/run/mysqld/mysqld.sock",
        ...                 "mariadb-db1")  # doctest: +SKIP
    """
    conn = conn if isinstance(conn, MyConn) else MyConn.parse(conn)
    tool("mariadb-backup")
    manifest = new_manifest(dataset, KIND, source=_facts(conn))  # bad credentials fail here
    if backup_id:
        manifest.backup_id = backup_id
    with recording(vault, manifest) as phase:
        manifest.transition(BackupStatus.UPLOADING)
        vault.known_chunks(refresh=True)
        phase("running mariadb-backup")
        log = _stream_backup(vault, conn, manifest, progress, workers)
        manifest.source["binlog"] = binlog_position(log) if manifest.source["log_bin"] else None
        stats = manifest.stats
        stats.files, stats.bytes_total = 1, manifest.streams[0].size
        stats.bytes_read, stats.chunks_total = stats.bytes_total, len(manifest.streams[0].chunks)
    return manifest


def _stream_backup(vault: Vault, conn: MyConn, manifest: Manifest, progress: Progress | None, workers: int) -> str:
    with conn.option_file() as opts, tempfile.TemporaryDirectory(prefix="seawall-mbackup-") as tmp, \
            tempfile.TemporaryFile() as err, ChunkWriter(vault, workers=workers) as writer:
        argv = [tool("mariadb-backup"), f"--defaults-extra-file={opts}", "--backup", "--stream=xbstream",
                f"--target-dir={tmp}"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        try:
            ref = writer.write(proc.stdout, STREAM, progress=progress)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        proc.wait()
        err.seek(0)
        log = err.read().decode(errors="replace")
        if proc.returncode != 0:
            raise tool_error("mariadb-backup", log, f"backing up {conn.display()}")
        writer.fill_stats(manifest.stats)
    manifest.streams = [ref]
    return log


def restore_physical(vault: Vault, manifest: Manifest, datadir: str | Path, *,
                     progress: Progress | None = None) -> dict[str, Any]:
    """Extract and prepare a physical backup into `datadir` (new or empty); returns its binlog position.

    Example:
        >>> restore_physical(vault, manifest, "/srv/mariadb-restore/data")  # doctest: +SKIP
    """
    if manifest.kind != KIND or manifest.status != BackupStatus.DONE:
        raise ConfigError(f"backup {manifest.backup_id} is a {manifest.status} {manifest.kind} backup, "
                          f"not a complete {KIND} one")
    datadir = Path(datadir)
    if datadir.exists() and any(datadir.iterdir()):
        raise ConfigError(f"restore target {datadir} is not empty", hint="restore into a new or empty directory")
    datadir.mkdir(parents=True, exist_ok=True)
    try:
        _extract(vault, manifest, datadir, progress)
        _run([tool("mariadb-backup"), "--prepare", f"--target-dir={datadir}"], "mariadb-backup --prepare", datadir)
        chown_to_server_user(datadir)
    except BaseException:
        shutil.rmtree(datadir, ignore_errors=True)
        raise
    return {"datadir": str(datadir), "binlog": manifest.source.get("binlog")}


def _extract(vault: Vault, manifest: Manifest, datadir: Path, progress: Progress | None) -> None:
    def feed(stdin) -> None:
        with ChunkReader(vault) as reader:
            for data in reader.iter_stream(manifest.stream(STREAM)):
                stdin.write(data)
                if progress:
                    progress(len(data))

    code, err = feed_tool([tool("mbstream"), "-x", "-C", str(datadir)], feed)
    if code != 0:
        raise IntegrityError(f"mbstream could not extract backup {manifest.backup_id}: {err.strip()[-300:]}")


def _run(argv: list[str], what: str, where: Path) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise tool_error(what, result.stderr, f"in {where}")


def scratch_server(datadir: Path, port: int | None = None):
    """A server on a restored data directory, reachable only through a private socket, grants off.

    The restored grant tables are the source's (its root password among them): a scratch server
    skips them, and `--skip-networking` keeps it off TCP, so only this host's root and the server's
    OS user (who can enter the private directory) reach it. Its socket, log and pid file live in a
    new private directory next to nothing of the user's; `remove()` deletes that directory only.
    """
    from seawall.mariadb.server import LocalServer, chown_to_server_user

    root = Path(tempfile.mkdtemp(prefix="seawall-mariadb-run-"))
    chown_to_server_user(root)
    return LocalServer(root, port, datadir=datadir, settings={"skip_grant_tables": "ON", "skip_networking": "ON"})


def restore_physical_pitr(vault: Vault, manifest: Manifest, datadir: str | Path, target: Any,
                          *, progress: Progress | None = None) -> dict[str, Any]:
    """Restore into `datadir`, then roll forward through archived binlogs to `target` (a BinlogTarget).

    A server is started on the restored files for the replay and stopped cleanly afterwards. A
    failure removes the data directory: nothing half-recovered is left.
    """
    from seawall.mariadb.binlog import replay_binlogs
    from seawall.mariadb.server import require_reachable

    datadir = Path(datadir)
    require_reachable(datadir)  # before any byte is written
    summary = restore_physical(vault, manifest, datadir, progress=progress)
    server = scratch_server(datadir)
    try:
        server.start()
        summary |= replay_binlogs(vault, manifest, MyConn(socket=str(server.socket), user="root"), target)
        server.stop()
    except BaseException:
        server.kill()
        shutil.rmtree(datadir, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(server.root, ignore_errors=True)
    return summary
