"""The server's WAL archiver as a physical backup sees it: `pg_stat_archiver`, and the waits on it.

A backup is restorable only once its WAL up to the stop segment is in the vault's archive. Both
backup methods refuse to start while the archiver is failing (`require_archiver_ok`), and
`wait_archived` stops waiting for the stop segment once the archiver has failed `ARCHIVE_TRIES`
times since the backup began with no success since (`ArchiverFailing`: one line naming the file
it fails on), else after `archive_wait` seconds at most (default `ARCHIVE_WAIT`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from seawall.errors import ConfigError, PermanentError, RetryableError
from seawall.postgres.conn import PgConn, translate_psycopg_errors
from seawall.postgres.wal import WalArchive
from seawall.vault import Vault

ARCHIVE_WAIT = 60.0  # seconds a backup waits for its stop segment to be archived (pgBackRest: archive-timeout 60 s)
# PostgreSQL's archiver tries a file 3 times, 1 s apart, before it sleeps (up to 60 s, or until the
# next segment): after one such round of failures, waiting on is almost always waiting for a person.
ARCHIVE_TRIES = 3
_ARCHIVER_SQL = ("SELECT archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_wal, "
                 "last_failed_time, now() FROM pg_stat_archiver")


class ArchiverFailing(PermanentError):
    """The server's archiver keeps failing, so the backup's WAL cannot reach the archive.

    Not retried: the archiver itself retries the file; what fails it (archive_command, the vault's
    passphrase or permissions, a full disk) needs a person far more often than a minute's wait, and
    PostgreSQL keeps every unarchived segment meanwhile, so nothing is lost. A task retry (10-80 s
    apart) only made a CLI backup wait minutes for the same line.
    """


@dataclass(frozen=True)
class ArchiverState:
    """One row of `pg_stat_archiver`."""

    archived_count: int
    last_archived_wal: str | None
    last_archived_time: datetime | None
    failed_count: int
    last_failed_wal: str | None
    last_failed_time: datetime | None
    now: datetime

    @property
    def failing(self) -> bool:
        """True while the archiver is stuck on a file (it never skips one, so no success since)."""
        if self.last_failed_time is None:
            return False
        return self.last_archived_time is None or self.last_failed_time > self.last_archived_time

    def has_archived(self, segment: str) -> bool:
        """Whether `segment` (or a later file) was archived: names sort by timeline then position."""
        return bool(self.last_archived_wal) and self.last_archived_wal[:24] >= segment


def query_one(conn: PgConn, pg: Any, sql: str, what: str) -> tuple:
    """One row of `sql`, on `pg` (an open connection to `conn`'s server) or on a connection of its own.

    A physical backup asks its questions on the one connection it holds (`BackupSession`): each new
    connection is a server process forked and authenticated (~4 ms here, more under load).
    """
    with translate_psycopg_errors(f"{what} of {conn.display()}"):
        if pg is not None:
            return pg.execute(sql).fetchone()
        with conn.connect() as own:
            return own.execute(sql).fetchone()


def read_archiver(conn: PgConn, pg: Any = None) -> ArchiverState:
    return ArchiverState(*query_one(conn, pg, _ARCHIVER_SQL, "reading pg_stat_archiver"))


_ARCHIVER_HINT = "check archive_command and the server log; a base backup cannot finish until it works"


def require_archiver_ok(conn: PgConn, pg: Any = None) -> ArchiverState:
    """ArchiverFailing while the archiver is stuck: a base backup could not finish until it recovers."""
    state = read_archiver(conn, pg)
    if state.failing:
        raise ArchiverFailing(
            f"WAL archiving on {conn.display()} is failing: {state.last_failed_wal} failed at "
            f"{state.last_failed_time:%Y-%m-%d %H:%M:%S%z} ({state.failed_count} failures, no success since)",
            hint=_ARCHIVER_HINT)
    return state


def wait_archived(conn: PgConn, segment: str, *, timeout: float, poll: float = 0.5, pg: Any = None,
                  since: ArchiverState | None = None) -> ArchiverState:
    """Wait until pg_stat_archiver has archived `segment` (or later); RetryableError after `timeout`.

    ArchiverFailing as soon as the archiver is failing and has failed `ARCHIVE_TRIES` times since
    `since` (the state read before the backup started; default: the wait's first read). Counting
    from the backup's start matters: the segment switch that ends a backup wakes the archiver, and
    its first tries may fail before this wait reads anything; after its third it sleeps a minute.
    """
    deadline, first = time.monotonic() + timeout, since
    while True:
        state = read_archiver(conn, pg)
        if state.has_archived(segment):
            return state
        first = first or state
        failures = state.failed_count - first.failed_count
        if state.failing and failures >= ARCHIVE_TRIES:  # it archives in order: `segment` waits behind it
            raise ArchiverFailing(
                f"WAL archiving on {conn.display()} is failing on {state.last_failed_wal} ({failures} failures "
                f"since the backup began, none archived since), so the backup's WAL up to {segment} cannot "
                "reach the archive", hint=_ARCHIVER_HINT)
        if time.monotonic() >= deadline:
            why = f"; archiver failing on {state.last_failed_wal}" if state.failing else ""
            raise RetryableError(f"WAL segment {segment} of the base backup was not archived within {timeout:.0f}s "
                                 f"(last archived: {state.last_archived_wal or 'none'}{why})",
                                 hint="check archive_command and the server log")
        time.sleep(poll)


def require_in_vault(vault: Vault, sysid: str, segment: str, *, timeout: float, poll: float = 0.5) -> None:
    """The stop segment must be in *this* vault's archive, or PITR from this backup is impossible."""
    key = WalArchive(vault).key(segment, sysid)
    deadline = time.monotonic() + min(timeout, 30)
    while not vault.store.exists(key):
        if time.monotonic() >= deadline:
            raise ConfigError(f"the server archived {segment}, but not into {vault.url} (no {key})",
                              hint=f"set archive_command = 'seawall wal-push %p --vault {vault.url} ...'")
        time.sleep(poll)
