"""Backup flows: `backup_files` (file trees) and `backup_postgres` (logical or physical)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deployments.events import emit_completed
from seawall.configs.postgres import as_postgres_source
from seawall.configs.vault import as_vault_target
from seawall.manifest import Manifest, new_backup_id
from seawall.naming import dataset_for_path
from tasks.files import backup_files_task, preflight_files
from tasks.postgres import backup_postgres_task, check_mode, default_dataset, preflight_postgres
from tasks.readiness import alert_suspicious_backup, check_backup_anomaly
from tasks.report import publish_backup_report
from tasks.runtime import flow, label_run

if TYPE_CHECKING:  # block types, resolved by tasks.runtime when the Prefect flow is built
    from blocks.postgres import PostgresSource
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
    target = as_vault_target(vault)
    dataset = dataset or dataset_for_path(path)
    label_run(dataset)
    preflight_files(path, target)
    manifest = backup_files_task(target, path, dataset, new_backup_id())
    publish_backup_report(manifest)
    verdict = check_backup_anomaly(target, manifest)
    if verdict.suspicious:
        alert_suspicious_backup(manifest, verdict, target.display())
    emit_completed("backup", manifest, target.display())
    return manifest


@flow(name="backup-postgres", stage="backup", log_prints=True)
def backup_postgres(source: PostgresSource | str, vault: VaultTarget | str, mode: str = "logical",
                    dataset: str | None = None, jobs: int = 2, with_passwords: bool = False) -> Manifest:
    """Back up PostgreSQL: `logical` (pg_dump, one database) or `physical` (base backup + WAL).

    A logical backup also saves the roles and memberships the database needs (their password
    verifiers only with `with_passwords`, which needs a superuser).

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
    preflight_postgres(source, target, mode)
    manifest = backup_postgres_task(source, target, mode, dataset, new_backup_id(), jobs, with_passwords)
    publish_backup_report(manifest)
    verdict = check_backup_anomaly(target, manifest)
    if verdict.suspicious:
        alert_suspicious_backup(manifest, verdict, target.display())
    emit_completed("backup", manifest, target.display())
    return manifest
