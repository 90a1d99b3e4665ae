"""Restore flows: `restore_files` (file trees), `restore_postgres` (logical or PITR), `restore_mariadb`
(logical or physical, optionally rolled forward through binlogs) and `restore_redis`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from seawall.configs.postgres import as_postgres_source
from seawall.configs.vault import as_vault_target
from seawall.postgres.recovery import CopyOptions, RecoveryTarget
from seawall.postgres.roles import RoleOptions
from tasks.postgres import restore_logical_task, restore_physical_task
from tasks.restore import describe_backup, retrieve_archived
from tasks.runtime import flow

# The file, MariaDB and Redis steps are imported by their own flows, not with this module: a
# PostgreSQL restore (a delta restore takes ~1.2 s in all) does not pay their imports (~20 ms).
if TYPE_CHECKING:  # block types, resolved by tasks.runtime when the Prefect flow is built
    from blocks.mariadb import MariaDBSource
    from blocks.postgres import PostgresSource
    from blocks.redis import RedisSource
    from blocks.vault import VaultTarget


@flow(name="restore-files", stage="restore", log_prints=True)
def restore_files(backup_id: str, vault: VaultTarget | str, target: str, delta: bool = False,
                  trust_mtime: bool = False, jobs: int = 3) -> dict:
    """Restore a files backup into an empty folder; returns `{"files": N, "skipped_items": [...]}`
    (what the target could not keep, e.g. device nodes when not run as root). `delta` brings an
    existing folder to the backup's state instead, writing only the chunks that differ and removing
    what the backup lacks (`"delta"` in the result counts it); `trust_mtime` keeps files whose size
    and mtime match unread; `jobs` files are written at once.

    Example:
        ```python
        from flows.restore import restore_files
        restore_files("20261122T001120Z-a1b2c3", "file:///backups/vault", "/tmp/restore")
        ```
    """
    from tasks.files import restore_files_task

    vault_target = as_vault_target(vault)
    retrieve_archived(vault_target, backup_id)
    return restore_files_task(vault_target, backup_id, target, delta, trust_mtime, jobs)


@flow(name="restore-postgres", stage="restore", log_prints=True)
def restore_postgres(backup_id: str, vault: VaultTarget | str, to_dsn: PostgresSource | str | None = None,
                     to_datadir: str | None = None, port: int | None = None, target: str = "latest",
                     leave_running: bool = True, jobs: int = 2, target_timeline: str = "latest",
                     target_action: str = "promote", target_exclusive: bool = False, archive: bool = True,
                     standby: bool = False, primary_conninfo: str = "",
                     tablespace_map: dict[str, str] | None = None, roles: str = "create",
                     role_map: list[str] | None = None, delta: bool = False, trust_mtime: bool = False,
                     force: bool = False) -> dict | list:
    """Restore a PostgreSQL backup: a logical one into a database (`to_dsn`), a physical one into a
    new data directory (`to_datadir`, started on `port`) at a point in time (`target`: `latest`,
    `immediate`, `time:2026-11-22T01:00:00Z`, `lsn:0/3000060`, `xid:1234`, `name:p1`).

    Physical: `target_timeline` (latest, current, N), `target_action` (promote, pause, shutdown),
    `target_exclusive`; once promoted the copy archives its WAL into the vault unless `archive` is
    False; `standby` makes an archive-fed standby (streaming too with `primary_conninfo`);
    `tablespace_map` relocates tablespaces (old location → new, empty one); `jobs` files are written
    at once; `delta` updates an existing, stopped data directory of the same cluster instead of a new
    one, writing only what differs (`force`: another cluster's, or any folder; `trust_mtime`: files
    whose size and mtime match are kept unread). Logical: `jobs` pg_restore jobs, `roles` (create,
    skip) and `role_map` (`["OLD=NEW"]`).

    Example:
        ```python
        from flows.restore import restore_postgres
        restore_postgres("20261122T001120Z-a1b2c3", "file:///backups/vault", to_datadir="/srv/pg2",
                         port=5440, target="time:2026-11-22T01:00:00Z")
        ```
    """
    vault_target = as_vault_target(vault)
    kind = describe_backup(vault_target, backup_id, to_dsn is not None, to_datadir is not None)
    retrieve_archived(vault_target, backup_id)
    if kind == "postgres-logical":
        return restore_logical_task(vault_target, backup_id, as_postgres_source(to_dsn), jobs, roles,
                                    RoleOptions.parse_map(role_map))
    recovery_target = RecoveryTarget.parse(target, timeline=target_timeline, action=target_action,
                                           exclusive=target_exclusive)
    copy = CopyOptions(archive=archive, standby=standby, primary_conninfo=primary_conninfo,
                       tablespace_map=tablespace_map or {}, jobs=jobs, delta=delta, force=force,
                       trust_mtime=trust_mtime)
    return restore_physical_task(vault_target, backup_id, to_datadir, port, recovery_target, leave_running, copy)


@flow(name="restore-mariadb", stage="restore", log_prints=True)
def restore_mariadb(backup_id: str, vault: VaultTarget | str, to_dsn: MariaDBSource | str | None = None,
                    to_datadir: str | None = None, until: str = "snapshot") -> dict:
    """Restore a MariaDB backup: a logical one into a new or empty database (`to_dsn`), a physical one
    into a new data directory (`to_datadir`); `until` rolls forward through the archived binlogs
    (`latest`, `time:2026-11-22T01:00:00Z`, `position:mariadb-bin.000042:1234`).

    Example:
        ```python
        from flows.restore import restore_mariadb
        restore_mariadb("20261122T001120Z-a1b2c3", "file:///backups/vault", to_dsn="mysql://root@db2/shop",
                        until="time:2026-11-22T01:00:00Z")
        ```
    """
    from seawall.configs.mariadb import as_mariadb_source
    from tasks.sources import restore_mariadb_logical_task, restore_mariadb_physical_task

    vault_target = as_vault_target(vault)
    retrieve_archived(vault_target, backup_id)
    if to_dsn is not None:
        return restore_mariadb_logical_task(vault_target, backup_id, as_mariadb_source(to_dsn), until)
    return restore_mariadb_physical_task(vault_target, backup_id, to_datadir, until)


@flow(name="restore-redis", stage="restore", log_prints=True)
def restore_redis(backup_id: str, vault: VaultTarget | str, to_url: RedisSource | str) -> dict:
    """Restore a Redis snapshot into a running, empty server.

    Example:
        ```python
        from flows.restore import restore_redis
        restore_redis("20261122T001120Z-a1b2c3", "file:///backups/vault", "redis://127.0.0.1:6380")
        ```
    """
    from seawall.configs.redis import as_redis_source
    from tasks.sources import restore_redis_task

    vault_target = as_vault_target(vault)
    retrieve_archived(vault_target, backup_id)
    return restore_redis_task(vault_target, backup_id, as_redis_source(to_url))
