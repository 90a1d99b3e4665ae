"""Restore flows: `restore_files` (file trees) and `restore_postgres` (logical or PITR)."""

from __future__ import annotations

from prefect import flow

from blocks.postgres import PostgresSource, as_postgres_source
from blocks.vault import VaultTarget, as_vault_target
from seawall.postgres.recovery import RecoveryTarget
from tasks.files import restore_files_task
from tasks.postgres import restore_logical_task, restore_physical_task
from tasks.restore import describe_backup, retrieve_archived


@flow(name="restore-files", log_prints=True)
def restore_files(backup_id: str, vault: VaultTarget | str, target: str) -> int:
    """Restore a files backup into an empty folder; returns the number of files written.

    Example:
        ```python
        from flows.restore import restore_files
        restore_files("20261122T001120Z-a1b2c3", "file:///backups/vault", "/tmp/restore")
        ```
    """
    vault_target = as_vault_target(vault)
    retrieve_archived(vault_target, backup_id)
    return restore_files_task(vault_target, backup_id, target)


@flow(name="restore-postgres", log_prints=True)
def restore_postgres(backup_id: str, vault: VaultTarget | str, to_dsn: PostgresSource | str | None = None,
                     to_datadir: str | None = None, port: int | None = None, target: str = "latest",
                     leave_running: bool = True, jobs: int = 2) -> dict:
    """Restore a PostgreSQL backup: a logical one into a database (`to_dsn`), a physical one into a
    new data directory (`to_datadir`, started on `port`) at a point in time (`target`: `latest`,
    `time:2026-11-22T01:00:00Z`, `lsn:0/3000060`, `xid:1234`, `name:p1`).

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
        return restore_logical_task(vault_target, backup_id, as_postgres_source(to_dsn), jobs)
    return restore_physical_task(vault_target, backup_id, to_datadir, port, RecoveryTarget.parse(target),
                                 leave_running)
