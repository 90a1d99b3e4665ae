"""Tasks for MariaDB/MySQL and Redis: preflight, backups, binlog archiving, restores.

Thin calls into `seawall.mariadb` / `seawall.redis`; each is idempotent (a retry reuses the backup
id; binlog archiving skips files already archived; restores refuse non-empty targets and discard
what a failed attempt wrote, so a retry starts clean).
"""

from __future__ import annotations

from seawall.configs.mariadb import MariaDBConfig
from seawall.configs.redis import RedisConfig
from seawall.configs.vault import VaultConfig
from seawall.errors import ConfigError
from seawall.lease import shared_lease
from seawall.manifest import Manifest
from seawall.mariadb import binlog, logical, logical_restore, physical
from seawall.naming import slug
from seawall.preflight import CheckResult, require_critical, run_checks
from seawall.progress import reporter
from seawall.redis import rdb
from seawall.redis.conn import translate_redis_errors
from tasks.policy import RETRYABLE
from tasks.runtime import task
from tasks.slots import vault_slot

MARIADB_MODES = ("logical", "physical")


def check_mariadb_mode(mode: str) -> str:
    if mode not in MARIADB_MODES:
        raise ConfigError(f"unknown backup mode {mode!r}", hint="use logical or physical")
    return mode


def default_mariadb_dataset(source: MariaDBConfig, mode: str) -> str:
    """`mariadb-<database>` (logical) or `mariadb-server-<host>-<port>` (physical)."""
    conn = source.get_myconn()
    if mode == "logical":
        return slug(f"mariadb-{conn.database or 'server'}")
    return slug(f"mariadb-server-{'local' if conn.socket else conn.host}-{conn.port}")


def default_redis_dataset(source: RedisConfig) -> str:
    conn = source.get_redisconn()
    return slug(f"redis-{'local' if conn.socket else conn.host}-{conn.port}")


def _mariadb_version(source: MariaDBConfig) -> str:
    with source.get_connection() as my, my.cursor() as cur:
        cur.execute("SELECT VERSION()")
        return cur.fetchone()[0]


def _redis_version(source: RedisConfig) -> str:
    with translate_redis_errors(f"connecting to {source.display()}", endpoint=source.get_redisconn().endpoint()):
        return source.get_client().info("server")["redis_version"]


@task(name="preflight-mariadb", **RETRYABLE)
def preflight_mariadb(source: MariaDBConfig, vault: VaultConfig) -> list[CheckResult]:
    """Check the server answers (with these credentials) and the vault opens, before writing anything.

    Example:
        ```python
        preflight_mariadb(MariaDBSource.load("BLOCK_NAME"), VaultTarget.load("VAULT"))
        ```
    """
    results = run_checks([("server reachable", lambda: _mariadb_version(source), True),
                          ("vault opens", lambda: vault.open_vault().config.vault_id, True)])
    require_critical(results)
    return results


@task(name="preflight-redis", **RETRYABLE)
def preflight_redis(source: RedisConfig, vault: VaultConfig) -> list[CheckResult]:
    """Check the server answers (with these credentials) and the vault opens.

    Example:
        ```python
        preflight_redis(RedisSource.load("BLOCK_NAME"), VaultTarget.load("VAULT"))
        ```
    """
    results = run_checks([("server reachable", lambda: _redis_version(source), True),
                          ("vault opens", lambda: vault.open_vault().config.vault_id, True)])
    require_critical(results)
    return results


@task(name="backup-mariadb", **RETRYABLE)
def backup_mariadb_task(source: MariaDBConfig, vault: VaultConfig, mode: str, dataset: str,
                        backup_id: str) -> Manifest:
    """A logical (mariadb-dump, one database) or physical (mariadb-backup, whole server) backup.

    Example:
        ```python
        backup_mariadb_task(MariaDBSource.load("DB"), VaultTarget.load("VAULT"), "logical", "mariadb-shop", bid)
        ```
    """
    v = vault.open_vault()
    with vault_slot(), shared_lease(v, f"backup {dataset}"):
        if mode == "logical":
            return logical.backup_logical(v, source.get_myconn(), dataset, backup_id=backup_id,
                                          parent=v.latest_backup(dataset, kind=logical.KIND),
                                          progress=reporter("mariadb-dump"))
        return physical.backup_physical(v, source.get_myconn(), dataset, backup_id=backup_id,
                                        progress=reporter("mariadb-backup"))


@task(name="archive-binlogs", **RETRYABLE)
def archive_binlogs_task(source: MariaDBConfig, vault: VaultConfig, dataset: str) -> Manifest | None:
    """Archive the server's closed binlogs the vault lacks (for point-in-time restores of `dataset`).

    Example:
        ```python
        archive_binlogs_task(MariaDBSource.load("DB"), VaultTarget.load("VAULT"), "mariadb-shop")
        ```
    """
    v = vault.open_vault()
    with vault_slot(), shared_lease(v, f"binlog archive {dataset}"):
        return binlog.archive_binlogs(v, source.get_myconn(), dataset)


@task(name="backup-redis", **RETRYABLE)
def backup_redis_task(source: RedisConfig, vault: VaultConfig, dataset: str, backup_id: str) -> Manifest:
    """An RDB snapshot of the server into the vault.

    Example:
        ```python
        backup_redis_task(RedisSource.load("CACHE"), VaultTarget.load("VAULT"), "redis-cache1", bid)
        ```
    """
    v = vault.open_vault()
    with vault_slot(), shared_lease(v, f"backup {dataset}"):
        return rdb.backup_rdb(v, source.get_redisconn(), dataset, backup_id=backup_id,
                              progress=reporter("redis-cli --rdb"))


@task(name="restore-mariadb-logical", **RETRYABLE)
def restore_mariadb_logical_task(vault: VaultConfig, backup_id: str, target: MariaDBConfig,
                                 until: str = "snapshot") -> dict:
    """Restore a logical backup into a new or empty database, check every table, then (if asked)
    roll forward through the archived binlogs to `until` (`latest`, `time:ISO`, `position:FILE:POS`).

    Example:
        ```python
        restore_mariadb_logical_task(VaultTarget.load("VAULT"), bid, MariaDBSource(dsn="mysql://root@db2/shop"))
        ```
    """
    v = vault.open_vault()
    manifest = v.require_done(backup_id)
    conn = target.get_myconn()
    stop = None if until == "snapshot" else binlog.BinlogTarget.parse(until)
    if stop is not None:
        binlog.plan_replay(v, manifest, stop)  # binary logging off / a gap: refused before any write
    checks = logical_restore.restore_logical(v, manifest, conn, progress=reporter("restore"))
    result = {"backup_id": backup_id, "target": conn.display(), "tables": len(checks), "until": until}
    if stop is not None:
        try:
            result |= binlog.replay_binlogs(v, manifest, conn, stop, source_db=manifest.source["database"])
        except BaseException:
            logical_restore.discard_target(conn, True, manifest.source)
            raise
    return result


@task(name="restore-mariadb-physical", **RETRYABLE)
def restore_mariadb_physical_task(vault: VaultConfig, backup_id: str, datadir: str, until: str = "snapshot") -> dict:
    """Extract and prepare a physical backup into a new data directory; optionally roll forward.

    Example:
        ```python
        restore_mariadb_physical_task(VaultTarget.load("VAULT"), bid, "/srv/mariadb-restore",
                                      "time:2026-11-22T01:00:00Z")
        ```
    """
    v = vault.open_vault()
    manifest = v.require_done(backup_id)
    if until == "snapshot":
        return physical.restore_physical(v, manifest, datadir, progress=reporter("restore"))
    stop = binlog.BinlogTarget.parse(until)
    binlog.plan_replay(v, manifest, stop)
    return physical.restore_physical_pitr(v, manifest, datadir, stop, progress=reporter("restore"))


@task(name="restore-redis", **RETRYABLE)
def restore_redis_task(vault: VaultConfig, backup_id: str, target: RedisConfig) -> dict:
    """Restore an RDB snapshot into a running, empty Redis server (DUMP/RESTORE, TTLs kept).

    Example:
        ```python
        restore_redis_task(VaultTarget.load("VAULT"), bid, RedisSource(url="redis://127.0.0.1:6380"))
        ```
    """
    v = vault.open_vault()
    return rdb.restore_to_server(v, v.require_done(backup_id), target.get_redisconn(), progress=reporter("restore"))
