"""The server side of a data-directory backup: pg_backup_start/stop over one held connection.

PostgreSQL 15's non-exclusive low-level API: `pg_backup_start(label, fast)` forces a checkpoint
(fast: at once) and returns the start LSN; the backup lasts as long as the session that started it,
so one connection is held open while the files are read; `pg_backup_stop(false)` ends it and
returns the stop LSN, the `backup_label` and the `tablespace_map` to store with the files (they are
what tells recovery where to start; the data directory must not contain them while the server
runs). `false`: we wait for the stop segment ourselves, with a timeout and the archiver's state
(`physical.wait_archived`), instead of a wait without end inside the server. On a primary
`pg_backup_stop` switches to a new WAL segment, so the stop segment is archived at once.

On a standby the backup starts at its last restartpoint and stops at its minimum recovery point;
the standby does not switch segments, so its primary is asked to (`pg_switch_wal()`), else the stop
segment waits for the primary to fill it. The primary is the one the standby streams from
(`pg_stat_wal_receiver`), reached with the DSN's user and password, or `primary_dsn`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from seawall.errors import ConfigError, PermanentError, RetryableError
from seawall.postgres.basebackup_tar import parse_backup_label
from seawall.postgres.conn import PgConn, translate_psycopg_errors
from seawall.postgres.walnames import format_lsn, parse_lsn, segment_name

_LAYOUT_SQL = """
SELECT current_setting('data_directory'), (SELECT catalog_version_no FROM pg_control_system())::int
"""
_RECEIVER_SQL = "SELECT sender_host, sender_port, status FROM pg_stat_wal_receiver"


@dataclass(frozen=True)
class StopFacts:
    stop_lsn: int
    backup_label: str
    tablespace_map: str


class BackupSession:
    """A connection that holds a running non-exclusive backup (`with` ends it on any exit)."""

    def __init__(self, conn: PgConn):
        self.conn = conn
        self._pg: Any = None
        self.start_lsn: int | None = None
        self.stopped = False

    def __enter__(self) -> BackupSession:
        self._pg = self.conn.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        # Ending the session aborts a backup it did not stop (PostgreSQL's do_pg_abort_backup):
        # a failed backup leaves nothing running on the server.
        self._pg.close()

    @property
    def pg(self) -> Any:
        """The held psycopg connection: the backup asks all its other questions on it too."""
        return self._pg

    def layout(self) -> tuple[str, int]:
        """(data_directory, catalog version) of the server."""
        with translate_psycopg_errors(f"reading data_directory of {self.conn.display()}"):
            row = self._pg.execute(_LAYOUT_SQL).fetchone()
        return row[0], row[1]

    def start(self, label: str) -> int:
        with translate_psycopg_errors(f"pg_backup_start on {self.conn.display()}"):
            lsn = self._pg.execute("SELECT pg_backup_start(%s, true)::text", (label,)).fetchone()[0]
        self.start_lsn = parse_lsn(lsn)
        return self.start_lsn

    def stop(self) -> StopFacts:
        with translate_psycopg_errors(f"pg_backup_stop on {self.conn.display()} (the backup's session ended?)"):
            row = self._pg.execute("SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(false)").fetchone()
        self.stopped = True
        return StopFacts(parse_lsn(row[0]), row[1], row[2] or "")


def wal_facts(stop: StopFacts, seg_size: int) -> dict[str, Any]:
    """start/stop LSN, timeline and WAL file names for the manifest, from pg_backup_stop's answer."""
    label = parse_backup_label(stop.backup_label)
    if "start_lsn" not in label or "timeline" not in label:
        raise PermanentError("pg_backup_stop returned a backup_label without a start location or timeline")
    tli = label["timeline"]
    stop_file = segment_name(tli, (stop.stop_lsn - 1) // seg_size, seg_size)  # the last byte needed
    return {**label, "stop_lsn": format_lsn(stop.stop_lsn), "stop_timeline": tli, "stop_wal_file": stop_file,
            "backup_label": stop.backup_label, "tablespace_map": stop.tablespace_map,
            "wal_ranges": [{"Timeline": tli, "Start-LSN": label["start_lsn"], "End-LSN": format_lsn(stop.stop_lsn)}]}


# ---- backups from a standby ---------------------------------------------------------------------
def primary_of(standby: PgConn, primary_dsn: str | None = None) -> PgConn:
    """The primary a standby streams from, reachable now; ConfigError (exit 2) naming it if not.

    `primary_dsn` (host, port, ...; no password: the standby's is used) overrides what the
    standby's WAL receiver says.
    """
    from psycopg.conninfo import make_conninfo

    if primary_dsn:
        given = PgConn(primary_dsn).params()
        if "password" in given:
            raise ConfigError("--primary-dsn must not hold a password",
                              hint="the password of --dsn is used for the primary too (or use ~/.pgpass)")
    else:
        given = _streams_from(standby)
    params = {k: v for k, v in standby.params().items() if k not in ("host", "port", "hostaddr")}
    primary = PgConn(make_conninfo(**{**params, **given}), standby.password)
    try:
        with translate_psycopg_errors(f"connecting to the primary {primary.display()}",
                                      endpoint=primary.display()), primary.connect() as pg:
            in_recovery = pg.execute("SELECT pg_is_in_recovery()").fetchone()[0]
    except (RetryableError, ConfigError) as exc:
        raise ConfigError(f"the primary of standby {standby.display()}, {primary.display()}, cannot be reached "
                          f"({exc.message})", hint="start it, or name a reachable one with --primary-dsn") from exc
    if in_recovery:
        raise ConfigError(f"{primary.display()} (the primary of {standby.display()}) is itself in recovery",
                          hint="give the real primary with --primary-dsn")
    return primary


def _streams_from(standby: PgConn) -> dict[str, str]:
    """Host and port of the standby's primary: its WAL receiver's, else its primary_conninfo's (the
    receiver is gone while the primary is down). Nothing else is taken (primary_conninfo may hold a
    password)."""
    from psycopg.conninfo import conninfo_to_dict

    with translate_psycopg_errors(f"reading pg_stat_wal_receiver of {standby.display()}"), standby.connect() as pg:
        row = pg.execute(_RECEIVER_SQL).fetchone()
        conninfo = pg.execute("SELECT current_setting('primary_conninfo')").fetchone()[0]
    if row and row[0]:
        return {"host": row[0], "port": str(row[1])}
    try:
        params = conninfo_to_dict(conninfo or "")
    except Exception:
        params = {}
    found = {k: str(params[k]) for k in ("host", "hostaddr", "port") if params.get(k)}
    if not found.get("host") and not found.get("hostaddr"):
        raise ConfigError(f"{standby.display()} is a standby that streams from no primary (no WAL receiver, "
                          "no primary_conninfo)", hint="a backup from a standby needs its primary: give --primary-dsn")
    return found


def switch_wal(primary: PgConn) -> None:
    """Ask the primary to close its current segment, so the standby backup's stop segment gets archived."""
    with translate_psycopg_errors(f"pg_switch_wal on {primary.display()}"), primary.connect() as pg:
        pg.execute("SELECT pg_switch_wal()")
