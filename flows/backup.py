"""Backup flows: `backup_files` (file trees), `backup_postgres` (logical or physical), `backup_mariadb`
(logical or physical) with `archive_mariadb_binlogs`, and `backup_redis` (RDB snapshots)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flows.finish import finish_backup
from seawall.configs.postgres import as_postgres_source
from seawall.configs.vault import as_vault_target
from seawall.manifest import Manifest, new_backup_id
from tasks.postgres import backup_postgres_task, check_method, check_mode, default_dataset, preflight_postgres
from tasks.runtime import flow, label_run

# The file, MariaDB and Redis steps are imported by their own flows, not with this module: a
# `seawall backup postgres` process loads this module and would pay ~15 ms for them.

if TYPE_CHECKING:  # block types, resolved by tasks.runtime when the Prefect flow is built
    from blocks.mariadb import MariaDBSource
    from blocks.postgres import PostgresSource
    from blocks.redis import RedisSource
    from blocks.vault import VaultTarget


@flow(name="backup-files", stage="backup", log_prints=True)
def backup_files(path: str, vault: VaultTarget | str, dataset: str | None = None) -> Manifest:
    """Back up a local folder into a vault, incrementally; returns the DONE manifest.

    Example:
        ```python
        from flows.backup import backup_files
        backup_files("/srv/data", "file:///backups/vault")  # passphrase from SEAWALL_PASSPHRASE
        ```
    """
    from seawall.naming import dataset_for_path
    from tasks.files import backup_files_task, preflight_files

    target = as_vault_target(vault)
    dataset = dataset or dataset_for_path(path)
    label_run(dataset)
    preflight_files(path, target)
    return finish_backup(backup_files_task(target, path, dataset, new_backup_id()), target)


@flow(name="backup-postgres", stage="backup", log_prints=True)
def backup_postgres(source: PostgresSource | str, vault: VaultTarget | str, mode: str = "logical",
                    dataset: str | None = None, jobs: int = 2, with_passwords: bool = False,
                    method: str = "datadir", full: bool = False, primary_dsn: str | None = None,
                    compress_level: int = 1) -> Manifest:
    """Back up PostgreSQL: `logical` (pg_dump, one database) or `physical` (base backup + WAL).

    A logical backup also saves the roles and memberships the database needs (their password
    verifiers only with `with_passwords`, which needs a superuser). A physical backup reads the
    data directory on this host (`method="datadir"`: parallel on `jobs` threads, incremental,
    page checksums verified; `full` reads everything; from a standby, `primary_dsn` names its
    primary when it is not the one it streams from, without a password; `compress_level` is the
    zstd level of new blocks, 0 to store them uncompressed) or streams `pg_basebackup`
    (`method="basebackup"`).

    Example:
        ```python
        from flows.backup import backup_postgres
        backup_postgres("host=db1 dbname=app user=backup", "s3://backups/pg?region=eu-west-1")
        ```
    """
    source, target = as_postgres_source(source), as_vault_target(vault)
    mode = check_mode(mode)
    dataset = dataset or default_dataset(source, mode)
    label_run(dataset)
    physical = None
    if mode == "physical":
        physical = {"method": check_method(method), "full": full, "primary_dsn": primary_dsn,
                    "compress_level": compress_level}
    preflight_postgres(source, target, mode, physical)
    manifest = backup_postgres_task(source, target, mode, dataset, new_backup_id(), jobs, with_passwords, physical)
    return finish_backup(manifest, target)


@flow(name="backup-mariadb", stage="backup", log_prints=True)
def backup_mariadb(source: MariaDBSource | str, vault: VaultTarget | str, mode: str = "logical",
                   dataset: str | None = None) -> Manifest:
    """Back up MariaDB/MySQL: `logical` (mariadb-dump, one database, consistent snapshot) or
    `physical` (mariadb-backup, the whole server; run it on the database host).

    Example:
        ```python
        from flows.backup import backup_mariadb
        backup_mariadb("mysql://backup@db1:3306/shop", "s3://backups/mariadb?region=eu-west-1")
        ```
    """
    from seawall.configs.mariadb import as_mariadb_source
    from tasks.sources import backup_mariadb_task, check_mariadb_mode, default_mariadb_dataset, preflight_mariadb

    source, target = as_mariadb_source(source), as_vault_target(vault)
    mode = check_mariadb_mode(mode)
    dataset = dataset or default_mariadb_dataset(source, mode)
    label_run(dataset)
    preflight_mariadb(source, target)
    return finish_backup(backup_mariadb_task(source, target, mode, dataset, new_backup_id()), target)


@flow(name="archive-mariadb-binlogs", stage="backup", log_prints=True)
def archive_mariadb_binlogs(source: MariaDBSource | str, vault: VaultTarget | str, dataset: str) -> Manifest | None:
    """Archive the server's closed binlogs for point-in-time restores of `dataset` (schedule it
    every few minutes: the interval bounds the RPO of a PITR).

    Example:
        ```python
        from flows.backup import archive_mariadb_binlogs
        archive_mariadb_binlogs("mysql://backup@db1:3306/shop", "file:///backups/vault", "mariadb-shop")
        ```
    """
    from seawall.configs.mariadb import as_mariadb_source
    from tasks.sources import archive_binlogs_task

    source, target = as_mariadb_source(source), as_vault_target(vault)
    label_run(dataset)
    return archive_binlogs_task(source, target, dataset)


@flow(name="backup-redis", stage="backup", log_prints=True)
def backup_redis(source: RedisSource | str, vault: VaultTarget | str, dataset: str | None = None) -> Manifest:
    """Snapshot a Redis server (RDB) into the vault.

    Example:
        ```python
        from flows.backup import backup_redis
        backup_redis("redis://cache1:6379", "file:///backups/vault")  # password: RedisSource block
        ```
    """
    from seawall.configs.redis import as_redis_source
    from tasks.sources import backup_redis_task, default_redis_dataset, preflight_redis

    source, target = as_redis_source(source), as_vault_target(vault)
    dataset = dataset or default_redis_dataset(source)
    label_run(dataset)
    preflight_redis(source, target)
    return finish_backup(backup_redis_task(source, target, dataset, new_backup_id()), target)
