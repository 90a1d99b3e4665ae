"""Physical backups: `pg_basebackup` streamed as one tar into the vault, with the WAL archive for PITR.

`pg_basebackup -D - -Ft -X none` writes the main tablespace as a single tar on stdout; it goes
straight into a `ChunkWriter` as the stream `base.tar` (no local copy). The tar carries its own
`backup_label` (first member) and, because it goes to stdout, the `backup_manifest` (last member,
`--manifest-checksums=SHA256`, so `pg_verifybackup` can run on a restored copy). A pass-through tap
reads both on the way (`seawall.postgres.basebackup_tar`): the label gives the start LSN and
timeline, the manifest's `WAL-Ranges` the stop LSN (pg_basebackup prints neither with `-X none`).

`-X none` relies on the archive: the server waits in `pg_backup_stop` until the stop segment is
archived, and we confirm it in `pg_stat_archiver` before the backup is DONE. A stuck archiver
would make that wait endless, so a watchdog stops the backup (RetryableError) once the archiver has
failed continuously for `archive_wait` seconds.
Both methods refuse to start while the archiver is failing and stop waiting for the stop segment
once it fails again (`seawall.postgres.archiver`).
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from seawall.errors import AuthError, ConfigError, IntegrityError, PermanentError, RetryableError, SeawallError
from seawall.lifecycle import recording
from seawall.manifest import BackupStatus, Manifest, new_manifest
from seawall.postgres import binaries
from seawall.postgres.archiver import ARCHIVE_WAIT, ArchiverState, query_one, read_archiver, require_archiver_ok
from seawall.postgres.archiver import ArchiverFailing as ArchiverFailing  # re-exported with the names below
from seawall.postgres.archiver import require_in_vault as require_in_vault
from seawall.postgres.archiver import wait_archived as wait_archived
from seawall.postgres.basebackup_tar import TarTap, stop_facts
from seawall.postgres.basebackup_tar import parse_backup_label as parse_backup_label  # re-exported: it lived here
from seawall.postgres.basebackup_tar import parse_wal_ranges as parse_wal_ranges  # re-exported: it lived here
from seawall.postgres.conn import PgConn, translate_psycopg_errors
from seawall.postgres.tablespaces import basebackup_to_spool, read_tablespaces
from seawall.streams import ChunkWriter
from seawall.vault import Vault

KIND = "postgres-physical"
BASE_STREAM = "base.tar"
Progress = Callable[[int], None]

_FACTS_SQL = """
SELECT current_setting('wal_level'), current_setting('archive_mode'), current_setting('archive_command'),
       coalesce(current_setting('archive_library', true), ''), current_setting('server_version'),
       current_setting('server_version_num')::int, current_setting('data_checksums'),
       (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'),
       (SELECT system_identifier FROM pg_control_system())::text,
       (SELECT count(*) FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global'))::int,
       pg_is_in_recovery()
"""


@dataclass(frozen=True)
class ServerFacts:
    """What a physical backup needs to know about the server before it starts."""

    wal_level: str
    archive_mode: str
    archive_command: str
    archive_library: str
    server_version: str
    server_version_num: int
    data_checksums: bool
    wal_segment_size: int
    system_identifier: str
    extra_tablespaces: int
    in_recovery: bool


def read_facts(conn: PgConn, pg: Any = None) -> ServerFacts:
    """Settings and identity of the server behind `conn` (asked on `pg` when given: see `query_one`)."""
    row = query_one(conn, pg, _FACTS_SQL, "reading settings")
    return ServerFacts(row[0], row[1], row[2], row[3], row[4], row[5], row[6] == "on", int(row[7]), row[8],
                       row[9], row[10])


def preflight(facts: ServerFacts, where: str) -> None:
    """Raise ConfigError naming exactly what to set when the server cannot feed a physical backup."""
    todo = []
    if facts.wal_level not in ("replica", "logical"):
        todo.append(f"wal_level = replica (is {facts.wal_level}; needs a restart)")
    wanted_mode = "always" if facts.in_recovery else "on"
    if facts.archive_mode not in ("on", "always") or (facts.in_recovery and facts.archive_mode != "always"):
        todo.append(f"archive_mode = {wanted_mode} (is {facts.archive_mode}; needs a restart)")
    if facts.archive_library:
        todo.append(f"archive_library = '' (is {facts.archive_library!r}; seawall archives with archive_command)")
    if not facts.archive_command.strip() or facts.archive_command.strip() == "(disabled)":
        todo.append("archive_command = 'seawall wal-push %p --vault URL --passphrase-file FILE'")
    if todo:
        raise ConfigError(f"{where} is not set up for physical backups: set " + "; ".join(todo),
                          hint="use ALTER SYSTEM or postgresql.conf, then restart/reload the server")


def check_archiving(conn: PgConn, *, method: str = "datadir", primary_dsn: str | None = None) -> str:
    """Preflight check: settings allow a physical backup and the archiver is not stuck.

    Returns:
        A one-line description for the preflight report.
    """
    with translate_psycopg_errors(f"connecting to {conn.display()}"), conn.connect() as pg:  # one connection
        facts = read_facts(conn, pg)
        if not (facts.in_recovery and method == "datadir"):
            return _archiving_line(conn, facts, pg)
    from seawall.postgres.pgsession import primary_of  # from a standby: its primary archives (see pgsession)

    conn = primary_of(conn, primary_dsn)
    return _archiving_line(conn, read_facts(conn), None)


def _archiving_line(conn: PgConn, facts: ServerFacts, pg: Any) -> str:
    preflight(facts, conn.display())
    state = require_archiver_ok(conn, pg)
    return (f"wal_level={facts.wal_level}, archive_mode={facts.archive_mode}, "
            f"last archived {state.last_archived_wal or 'nothing yet'}")


# ---- running pg_basebackup -----------------------------------------------------------------------
def basebackup_argv(conn: PgConn) -> list[str]:
    return [binaries.tool("pg_basebackup"), "-d", conn.conninfo, "-D", "-", "--format=tar", "--wal-method=none",
            "--checkpoint=fast", "--no-password", "--verbose", "--manifest-checksums=SHA256",
            "--label=seawall"]


def classify_basebackup_error(stderr: str, where: str) -> Exception:
    """The seawall error for a failed pg_basebackup, from its last error line."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error:" in ln or "FATAL" in ln] or lines or ["exited without a message"]
    line = errors[0].removeprefix("pg_basebackup: ")
    low = stderr.lower()
    message = f"pg_basebackup from {where} failed: {line}"
    if "password authentication failed" in low or "no password supplied" in low or "permission denied" in low \
            or "must be superuser or replication role" in low:
        return AuthError(message, hint="the user needs the REPLICATION attribute and a valid password")
    if "pg_hba.conf" in low:
        return ConfigError(message, hint="allow a replication connection for this user in pg_hba.conf")
    if "number of requested standby connections exceeds" in low or "max_wal_senders" in low:
        return ConfigError(message, hint="raise max_wal_senders (needs a restart)")
    if "could not connect" in low or "connection refused" in low or "terminat" in low or "timeout" in low \
            or "could not read copy data" in low or "server closed the connection" in low:
        return RetryableError(message)
    return PermanentError(message)


class _Watchdog(threading.Thread):
    """Stops pg_basebackup when the archiver stays stuck: the server would wait for it forever."""

    def __init__(self, proc: subprocess.Popen, conn: PgConn, archive_wait: float, poll: float = 2.0):
        super().__init__(name="seawall-basebackup-watchdog", daemon=True)
        self.proc, self.conn, self.archive_wait, self.poll = proc, conn, archive_wait, poll
        self.stuck: ArchiverState | None = None
        self._stop = threading.Event()

    def run(self) -> None:
        failing_since: float | None = None
        while not self._stop.wait(self.poll) and self.proc.poll() is None:
            try:
                state = read_archiver(self.conn)
            except SeawallError:  # the backup itself will report a dead server
                continue
            if not state.failing:
                failing_since = None
                continue
            failing_since = failing_since or time.monotonic()
            if time.monotonic() - failing_since >= self.archive_wait:
                self.stuck = state
                self.proc.terminate()
                return

    def stop(self) -> None:
        self._stop.set()


def _drain(stream: BinaryIO, sink: list[bytes]) -> threading.Thread:
    def pump() -> None:
        for line in iter(stream.readline, b""):
            sink.append(line)

    thread = threading.Thread(target=pump, name="seawall-basebackup-stderr", daemon=True)
    thread.start()
    return thread


def stream_basebackup_spooled(writer: ChunkWriter, conn: PgConn, *, archive_wait: float,
                              progress: Progress | None) -> tuple[list, TarTap, str]:
    """pg_basebackup of a cluster with tablespaces (one tar each, through a local spool: see
    `seawall.postgres.tablespaces`); returns (StreamRefs, base.tar's tap, stderr text)."""
    watchdogs: list[_Watchdog] = []

    def watchdog(proc: subprocess.Popen) -> _Watchdog:
        watchdogs.append(_Watchdog(proc, conn, archive_wait))
        watchdogs[-1].start()
        return watchdogs[-1]

    refs, tap, stderr, rc = basebackup_to_spool(writer, basebackup_argv(conn), conn, progress=progress,
                                                watchdog_factory=watchdog)
    _raise_for(conn, watchdogs[0].stuck if watchdogs else None, archive_wait, rc, stderr, tap)
    return refs, tap, stderr


def _raise_for(conn: PgConn, stuck: ArchiverState | None, archive_wait: float, rc: int, stderr: str,
               tap: TarTap) -> None:
    if stuck is not None:
        raise RetryableError(f"WAL archiving on {conn.display()} kept failing on {stuck.last_failed_wal} for "
                             f"{archive_wait:.0f}s, so the base backup cannot complete",
                             hint="fix archive_command (see the server log), then run the backup again")
    if rc != 0:
        raise classify_basebackup_error(stderr, conn.display())
    if not tap.ended:
        raise IntegrityError(f"pg_basebackup from {conn.display()} ended without the tar end marker")


def stream_basebackup(writer: ChunkWriter, conn: PgConn, *, archive_wait: float,
                      progress: Progress | None) -> tuple[Any, TarTap, str]:
    """Run pg_basebackup into `writer`; returns (StreamRef, tap, stderr text)."""
    proc = binaries.popen(basebackup_argv(conn), as_server_user=False, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=conn.tool_env(), bufsize=0)
    err: list[bytes] = []
    drain = _drain(proc.stderr, err)
    watchdog = _Watchdog(proc, conn, archive_wait)
    watchdog.start()
    try:
        tap = TarTap(proc.stdout)
        ref = writer.write(tap, BASE_STREAM, progress=progress)
        rc = proc.wait()
    finally:
        watchdog.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        drain.join(timeout=10)
    stderr = b"".join(err).decode("utf-8", "replace")
    _raise_for(conn, watchdog.stuck, archive_wait, rc, stderr, tap)
    return ref, tap, stderr


# ---- the backup -----------------------------------------------------------------------------------
def _server_now(conn: PgConn, pg: Any = None) -> datetime:
    return query_one(conn, pg, "SELECT now()", "reading the time")[0]


METHODS = ("datadir", "basebackup")


def backup_physical(vault: Vault, conn: PgConn, dataset: str, *, backup_id: str | None = None,
                    progress: Progress | None = None, archive_wait: float = ARCHIVE_WAIT,
                    workers: int = 3, method: str = "datadir", jobs: int | None = None, full: bool = False,
                    primary_dsn: str | None = None, compress_level: int = 1) -> Manifest:
    """Take a base backup of the cluster behind `conn` into `vault`; returns the DONE manifest.

    `method="datadir"` (the default) reads the data directory here, in parallel and incrementally
    (`seawall.postgres.datadir_backup`, which takes `jobs`, `full`, `primary_dsn` and `compress_level`);
    `method="basebackup"` streams `pg_basebackup` (works from any host with a replication
    connection; every backup reads and sends the whole cluster), described below.

    Args:
        vault: the opened vault; its WAL archive must be where the server's archive_command pushes.
        conn: a connection allowed to run pg_basebackup (REPLICATION, pg_hba replication entry).
        dataset: dataset name for the manifest.
        backup_id: reuse this id (a retried task); default: a new one.
        progress: called with the number of bytes read from pg_basebackup.
        archive_wait: seconds the archiver may stay stuck (or the stop segment unarchived) before a
            RetryableError.
        workers: chunk-store worker threads.

    Raises:
        ConfigError: wal_level/archive_mode/archive_command not set for archiving.
        RetryableError: the server is unreachable or WAL archiving is stuck.
    """
    if method == "datadir":
        from seawall.postgres.datadir_backup import backup_datadir

        return backup_datadir(vault, conn, dataset, backup_id=backup_id, progress=progress, archive_wait=archive_wait,
                              jobs=jobs, full=full, primary_dsn=primary_dsn, workers=workers,
                              compress_level=compress_level)
    if method != "basebackup":
        raise ConfigError(f"unknown physical backup method {method!r}", hint="use datadir or basebackup")
    facts = read_facts(conn)
    preflight(facts, conn.display())
    archiver = require_archiver_ok(conn)
    manifest = _new_physical_manifest(facts, dataset, backup_id)
    manifest.source["method"] = "basebackup"
    if facts.extra_tablespaces:
        manifest.source["tablespaces"] = read_tablespaces(conn)
    with recording(vault, manifest) as phase:
        phase("streaming pg_basebackup")
        tap = _upload_base(vault, conn, manifest, archive_wait=archive_wait, progress=progress, workers=workers)
        phase("waiting for the stop segment to be archived")
        manifest.source.update(stop_facts(tap, facts.wal_segment_size))
        manifest.source["backup_label"] = tap.label.decode("utf-8", "replace")
        wait_archived(conn, manifest.source["stop_wal_file"], timeout=archive_wait, since=archiver)
        require_in_vault(vault, facts.system_identifier, manifest.source["stop_wal_file"], timeout=archive_wait)
        manifest.source["stop_time"] = _server_now(conn).isoformat()
    return manifest


def _new_physical_manifest(facts: ServerFacts, dataset: str, backup_id: str | None) -> Manifest:
    manifest = new_manifest(dataset, KIND, source={
        "system_identifier": facts.system_identifier, "server_version": facts.server_version,
        "server_version_num": facts.server_version_num, "data_checksums": facts.data_checksums,
        "wal_segment_size": facts.wal_segment_size, "from_standby": facts.in_recovery})
    if backup_id:
        manifest.backup_id = backup_id
    return manifest


def _upload_base(vault: Vault, conn: PgConn, manifest: Manifest, *, archive_wait: float,
                 progress: Progress | None, workers: int) -> TarTap:
    """Stream pg_basebackup into the vault as the manifest's one stream; returns the tap that read it."""
    manifest.transition(BackupStatus.UPLOADING)
    vault.known_chunks(refresh=True)
    with ChunkWriter(vault, workers=workers) as writer:
        if manifest.source.get("tablespaces"):
            refs, tap, _ = stream_basebackup_spooled(writer, conn, archive_wait=archive_wait, progress=progress)
        else:
            ref, tap, _ = stream_basebackup(writer, conn, archive_wait=archive_wait, progress=progress)
            refs = [ref]
        writer.fill_stats(manifest.stats)
    manifest.streams = refs
    size = sum(r.size for r in refs)
    manifest.stats.files, manifest.stats.bytes_total = len(refs), size
    manifest.stats.bytes_read, manifest.stats.chunks_total = size, sum(len(r.chunks) for r in refs)
    return tap
