"""The parts of a physical restore that depend on where it goes: the WAL path check before it
starts, how it ends (promoted, paused, shut down, a standby), and the settings it leaves behind.

- `check_wal_path` runs before the data directory is touched: the timeline is chosen and every
  history file and segment from the backup's start to the target along it must be archived
  (`seawall.postgres.timelines`); a missing one is an IntegrityError naming it (exit 3), a timeline
  the archive lacks or that branched before the backup's end a ConfigError (exit 2).
- `wait_for_end` waits for the state the target action asks for.
- `finish_settings` leaves nothing dangling in postgresql.auto.conf: a promoted copy loses its
  recovery settings (restore_command pointed at a spool folder that is gone); a paused, shut-down or
  standby copy keeps a plain `seawall wal-get` restore_command, since it still needs WAL.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from seawall.errors import ConfigError, IntegrityError, RetryableError
from seawall.manifest import Manifest
from seawall.postgres import binaries, walnames
from seawall.postgres.cluster import LocalCluster
from seawall.postgres.conn import PgConn
from seawall.postgres.targets import RECOVERY_ONLY, RecoveryTarget
from seawall.postgres.timelines import Archived, BackupPoint, PathError, TimelinePath, choose_timeline, plan_path
from seawall.postgres.wal import WalArchive
from seawall.vault import Vault

_RESTORE_COMMAND = re.compile(r"^\s*restore_command\s*=", re.I)


@dataclass
class CopyOptions:
    """What the restored copy becomes besides a promoted, non-archiving PITR copy.

    Example:
        >>> CopyOptions(archive=True)  # the promoted copy keeps archiving into the vault  # doctest: +SKIP
    """

    archive: bool = False  # once promoted, push WAL (its new timeline's history file first) to the vault
    standby: bool = False  # stay a standby fed from the archive (and `primary_conninfo`, if set)
    primary_conninfo: str = ""  # streaming from a primary too (no password: use the server user's .pgpass)
    tablespace_map: dict[str, str] = field(default_factory=dict)  # old location -> new location
    # How the files are written (`seawall.postgres.restore_delta`): `jobs` files at once; `delta`
    # updates an existing, stopped data directory of the same cluster (`force`: any folder);
    # `trust_mtime` keeps files whose size and mtime match unread.
    jobs: int = 3
    delta: bool = False
    force: bool = False
    trust_mtime: bool = False

    def check(self, target: RecoveryTarget) -> None:
        if self.standby and target.kind != "latest":
            raise ConfigError(f"a standby follows the archive to its end: it takes no target (got {target})",
                              hint="drop --target-* or --standby")
        if self.primary_conninfo and not self.standby:
            raise ConfigError("--primary-conninfo is for --standby restores")
        if (self.force or self.trust_mtime) and not self.delta:
            raise ConfigError("--force and --delta-trust-mtime go with --delta")
        if self.jobs < 1:
            raise ConfigError(f"jobs must be at least 1, not {self.jobs}")
        if self.primary_conninfo and "password" in PgConn(self.primary_conninfo).params():  # (psycopg: only then)
            raise ConfigError("--primary-conninfo must not hold a password (it would be written into "
                              "postgresql.auto.conf)", hint="put it in the server OS user's ~/.pgpass")

    def mode(self, target: RecoveryTarget) -> str:
        return "standby" if self.standby else target.action


class ServerStopped(Exception):
    """The server stopped while we waited for it (the caller reads the log to say why)."""


def _end_segno(target: RecoveryTarget, point: BackupPoint, seg_size: int) -> int | None:
    if target.kind == "lsn":
        return max(walnames.parse_lsn(target.value) // seg_size, point.stop_segno(seg_size))
    if target.kind == "immediate":
        return point.stop_segno(seg_size)
    return None


def check_wal_path(vault: Vault, manifest: Manifest, target: RecoveryTarget, *, standby: bool = False) -> TimelinePath:
    """The WAL path of this restore, every file of it archived; raises naming the first missing one."""
    archive = WalArchive(vault)
    seg_size = int(manifest.source.get("wal_segment_size") or archive.seg_size)
    names = archive.names()
    archived = Archived.from_names(names, archive.histories(names), seg_size)
    point = BackupPoint.from_source(manifest.source, seg_size)
    where = f"backup {manifest.backup_id}"
    try:
        timeline = choose_timeline("latest" if standby else target.timeline, point, archived)
        path = plan_path(point, timeline, archived, _end_segno(target, point, seg_size))
    except PathError as exc:
        cls = IntegrityError if exc.kind == "integrity" else ConfigError
        raise cls(f"cannot restore {where} to {target} on timeline {target.timeline}: {exc.message}",
                  hint=exc.hint) from None
    if path.lost:
        raise IntegrityError(f"restore of {where} to {target} on timeline {timeline} refused: WAL segment "
                             f"{path.lost[0]} is missing from the archive (newest archived on that path: "
                             f"{path.newest}); nothing was restored",
                             hint="restore to an earlier point or timeline, or from a newer backup")
    if path.after_newest:
        first = path.after_newest[0]
        own = walnames.parse_segment(first, seg_size)[1] <= point.stop_segno(seg_size)
        if own:
            raise IntegrityError(f"WAL segment {first}, which {where} itself needs, is missing from the archive")
        raise ConfigError(f"target {target} is after the newest archived WAL on timeline {timeline} "
                          f"({path.newest}, needs {first})",
                          hint="pick an earlier target, or archive more WAL (pg_switch_wal()) and retry")
    return path


# ---- waiting for the end of recovery --------------------------------------------------------------
class _Probe:
    """One connection to the copy, kept for every poll: a session opened during hot-standby
    recovery sees the promotion (pg_is_in_recovery() reads shared state), so polling it costs a
    query (~0.1 ms on the socket), not a new backend (~4 ms), and can run every 10 ms."""

    SQL = ("SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() "
           "THEN pg_get_wal_replay_pause_state() ELSE '' END")

    def __init__(self, cluster: LocalCluster):
        self.cluster, self.conn = cluster, None

    def state(self) -> tuple[bool, str] | Exception:
        """(in recovery, pause state), or the error the connection or query failed with."""
        import psycopg

        try:
            if self.conn is None:
                self.conn = self.cluster.connect()
            row = self.conn.execute(self.SQL).fetchone()
            return bool(row[0]), row[1]
        except psycopg.Error as exc:
            self.close()
            return exc

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def _accepting(cluster: LocalCluster) -> bool:
    """Whether postmaster.pid's status line (its 8th) says connections are accepted: `ready`, or
    `standby` (read-only, during hot-standby recovery). An unreadable or short file counts as yes."""
    try:
        lines = (Path(cluster.datadir) / "postmaster.pid").read_text().splitlines()
    except OSError:
        return True
    return len(lines) < 8 or lines[7].strip() in ("ready", "standby")


def _reached(mode: str, state: tuple[bool, str] | Exception) -> bool:
    if isinstance(state, Exception):
        return False
    in_recovery, pause = state
    return {"promote": not in_recovery, "pause": in_recovery and pause == "paused",
            "standby": in_recovery}.get(mode, False)


#: How long a postmaster that says it accepts connections may refuse ours before the restore
#: gives up: long enough for a one-off refusal (a server restarting after promotion), far shorter
#: than the recovery timeout (an hour) that a server which will never let us in used to cost.
REFUSED_FOR = 3.0


def wait_for_end(cluster: LocalCluster, mode: str, timeout: float, *, grace: float = 15) -> None:
    """Wait until the copy is promoted, paused at the target, shut down at it, or a running standby.

    Raises:
        ServerStopped: it stopped on the way (for `shutdown`, without saying it reached the target).
        ConfigError: it says it accepts connections (postmaster.pid) but has refused ours for
            REFUSED_FOR seconds (pg_hba.conf, a missing role or database): exit 2, at once.
        RetryableError: still recovering after `timeout` seconds.
    """
    start, seen, refused = time.monotonic(), False, None
    probe = _Probe(cluster)
    try:
        while time.monotonic() - start < timeout:
            running = cluster.is_running()  # a dead postmaster nobody reaped is not running (LocalCluster)
            seen = seen or running
            if not running and (seen or time.monotonic() - start > grace):
                if mode == "shutdown" and "shutdown at recovery target" in cluster.log_tail(40):
                    return
                raise ServerStopped()
            # Ask only once the postmaster says it accepts connections (each refused attempt logs a
            # FATAL line), then often: a restore ends when this sees the end (a 0.25 s poll added
            # 0.125 s on average to every restore, a tenth of a delta restore's wall).
            state = probe.state() if running and _accepting(cluster) else None
            if state is not None and _reached(mode, state):
                return
            if isinstance(state, Exception):
                refused = refused or time.monotonic()
                if time.monotonic() - refused >= REFUSED_FOR:
                    raise _refusal(cluster, state)
            else:
                refused = None
            time.sleep(0.25 if refused else 0.01 if probe.conn is not None else 0.05)
    finally:
        probe.close()
    raise RetryableError(f"PostgreSQL in {cluster.datadir} still in recovery after {timeout:.0f}s",
                         hint="raise the timeout; see " + str(cluster.logfile))


def _refusal(cluster: LocalCluster, exc: Exception) -> ConfigError:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    said = next((ln.split("FATAL:", 1)[1].strip() for ln in lines if "FATAL:" in ln), lines[0] if lines else "")
    return ConfigError(f"the restored PostgreSQL in {cluster.datadir} runs but refuses seawall's connection "
                       f"(user postgres, socket {cluster.socket_dir}) for {REFUSED_FOR:g}s: {said}; "
                       f"server log: {cluster.logfile}",
                       hint="let the server's OS user in over the Unix socket (pg_hba.conf: "
                            "`local all postgres peer`), then restore again")


# ---- what stays in postgresql.auto.conf ---------------------------------------------------------
def finish_settings(cluster: LocalCluster, plain_restore_command: str | None) -> None:
    """A promoted copy (`plain_restore_command` None) loses every recovery-only setting; one that
    still recovers (paused, shut down at the target, standby) keeps its target and gets a plain
    `seawall wal-get` restore_command instead of the one reading the (removed) prefetch spool."""
    conf = Path(cluster.datadir) / "postgresql.auto.conf"
    lines = conf.read_text().splitlines(keepends=True) if conf.exists() else []
    drop = RECOVERY_ONLY if plain_restore_command is None else _RESTORE_COMMAND
    conf.write_text("".join(ln for ln in lines if not drop.match(ln)))
    binaries.chown_to_server_user(conf)
    if plain_restore_command:
        cluster.configure({"restore_command": plain_restore_command})
    if cluster.is_running():
        cluster.execute("SELECT pg_reload_conf()")
