"""Restoring a backup into its scratch target, timed per phase, and measuring the achieved RPO.

Phases are measured from the restore's own progress: the moment the last backup byte left the
vault splits a restore in two.

- logical: `fetch_decode_load` (chunks fetched, decrypted, decompressed and streamed into
  `pg_restore`, which loads them as they come) and `post_data` (index builds, constraints);
- physical: `fetch_decode_extract` (base.tar into the data directory) and `replay` (start, WAL
  fetched through `wal-get` and replayed to the target, promotion);
- files: `fetch_decode_write`.

The restore's wall time is the restore part of the RTO.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from seawall import heartbeat
from seawall.checks import sources
from seawall.checks.plan import RestorePlan
from seawall.checks.scratch import FILES, LOGICAL, Scratch
from seawall.manifest import Manifest
from seawall.postgres.conn import PgConn, translate_psycopg_errors
from seawall.postgres.logical_restore import restore_logical
from seawall.postgres.recovery import CopyOptions, RecoveryTarget, restore_physical
from seawall.postgres.roles import RoleOptions
from seawall.sources.files import restore_tree
from seawall.vault import Vault

_LOG_TIME = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?[+-]\d\d(?::?\d\d)?)")


@dataclass
class Restored:
    """A restored copy: how to reach it, and what the restore measured."""

    conn: PgConn | None = None  # logical: the restored database; physical: `postgres` of the copy
    databases: list[str] = field(default_factory=list)
    tree: str | None = None
    phases: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    last_transaction: datetime | None = None  # physical: "last completed transaction was at log time"
    bytes_read: int = 0
    copy: Any = None  # MariaDB: a MyConn; Redis: the LocalRedis (seawall.checks.sources)

    def conn_for(self, dbname: str) -> PgConn:
        return self.conn.with_dbname(dbname)


class _Clock:
    """Progress callback that remembers when the last byte came out of the vault."""

    def __init__(self) -> None:
        self.start = self.last = time.monotonic()
        self.bytes = 0

    def __call__(self, n: int) -> None:
        self.bytes += n
        self.last = time.monotonic()

    def split(self, first: str, second: str) -> tuple[dict[str, float], float]:
        end = time.monotonic()
        return {first: round(self.last - self.start, 3), second: round(end - self.last, 3)}, round(end - self.start, 3)


def _restore_logical(vault: Vault, manifest: Manifest, scratch: Scratch, jobs: int, clock: _Clock) -> Restored:
    # verify=False: the rows-checksum check task does the same comparison, table by table.
    # Roles the backup needs are created when missing (an existing one is used as it is): a
    # verification never fails for want of a role, and owners, grants and policies are restored too.
    options = RoleOptions(mode="create", use_existing=True)
    try:
        restore_logical(vault, manifest, scratch.conn, create_db=True, jobs=jobs, progress=clock, verify=False,
                        role_options=options)
    finally:
        scratch.created_roles = list(options.created)
    phases, seconds = clock.split("fetch_decode_load", "post_data")
    dbname = scratch.conn.params()["dbname"]
    return Restored(scratch.conn, [dbname], phases=phases, seconds=seconds, bytes_read=clock.bytes)


def _databases(conn: PgConn) -> list[str]:
    with conn.connect() as pg, translate_psycopg_errors(f"listing databases of {conn.display()}"):
        rows = pg.execute("SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1")
        return [r[0] for r in rows]


def _restore_physical(vault: Vault, manifest: Manifest, plan: RestorePlan, scratch: Scratch, passphrase: str,
                      vault_url: str, clock: _Clock) -> Restored:
    # Tablespaces go inside the scratch folder (their original locations belong to the source).
    locations = {t["location"]: str(scratch.root / f"tablespace-{t['oid']}")
                 for t in manifest.source.get("tablespaces") or []}
    summary = restore_physical(vault, manifest, scratch.datadir, port=scratch.port,
                               target=RecoveryTarget.parse(plan.target), vault_url=vault_url,
                               passphrase=passphrase, leave_running=True, progress=clock,
                               copy=CopyOptions(tablespace_map=locations))
    phases, seconds = clock.split("fetch_decode_extract", "replay")
    conn = PgConn(summary["conninfo"])
    match = _LOG_TIME.search(summary.get("last_transaction") or "")
    last = datetime.fromisoformat(match[1]) if match else None
    return Restored(conn, _databases(conn), phases=phases, seconds=seconds, last_transaction=last,
                    bytes_read=clock.bytes)


def restore_into(vault: Vault, manifest: Manifest, plan: RestorePlan, scratch: Scratch, *, passphrase: str,
                 vault_url: str, jobs: int = 2) -> Restored:
    """Restore `manifest` into `scratch` as `plan` says; returns the copy and the phase times.

    Raises:
        IntegrityError: a chunk is missing or corrupt (the message names it), or WAL is missing.
        ConfigError: the target is outside what the backup can reach.

    Example:
        >>> restore_into(vault, manifest, plan, scratch, passphrase=pw, vault_url=url).phases  # doctest: +SKIP
        {'fetch_decode_load': 41.2, 'post_data': 12.9}
    """
    clock = _Clock()
    if manifest.kind in sources.KINDS:
        copy = sources.restore(vault, manifest, scratch.source, clock)
        phases, seconds = clock.split("fetch_decode_load", "finish")
        return Restored(phases=phases, seconds=seconds, bytes_read=clock.bytes, copy=copy)
    if manifest.kind == LOGICAL:
        return _restore_logical(vault, manifest, scratch, jobs, clock)
    if manifest.kind == FILES:
        restore_tree(vault, manifest, scratch.tree, progress=clock)
        phases, seconds = clock.split("fetch_decode_write", "finish")
        return Restored(tree=str(scratch.tree), phases=phases, seconds=seconds, bytes_read=clock.bytes)
    return _restore_physical(vault, manifest, plan, scratch, passphrase, vault_url, clock)


def run_sql(conn: PgConn, sql: str) -> None:
    """Run statements on the copy (the `before_checks` test hook: alter data before the checks)."""
    with conn.connect() as pg, translate_psycopg_errors(f"running before_checks SQL on {conn.display()}"):
        pg.execute(sql)


# ---- achieved RPO -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rpo:
    """The achieved RPO and what it was measured from."""

    seconds: float | None
    source: str  # heartbeat | wal-last-transaction | backup-start
    restore_point: datetime | None
    reference: datetime


def measure_rpo(manifest: Manifest, restored: Restored, plan: RestorePlan, started: datetime) -> Rpo:
    """RPO = reference - newest data in the copy; reference = the target time, else `started`.

    The newest data is the newest heartbeat row when a heartbeat table exists (exact to its
    interval), else the last replayed transaction (physical), else the backup's start (logical
    snapshots and file trees are taken at the start).
    """
    reference = plan.target_time or started
    for db in restored.databases:
        facts = heartbeat.read_facts(restored.conn_for(db))
        if facts is not None and facts.newest is not None:
            return Rpo(heartbeat.achieved_rpo(reference, facts.newest), "heartbeat", facts.newest, reference)
    if restored.last_transaction is not None:
        return Rpo(heartbeat.achieved_rpo(reference, restored.last_transaction), "wal-last-transaction",
                   restored.last_transaction, reference)
    return Rpo(heartbeat.achieved_rpo(reference, manifest.started_at), "backup-start", manifest.started_at, reference)
