"""Restore-side helpers shared by the restore flows."""

from __future__ import annotations

from seawall.configs.vault import VaultConfig
from seawall.errors import ConfigError
from tasks.policy import RETRYABLE
from tasks.runtime import task

_TARGET_FOR = {"postgres-logical": "--to-dsn", "postgres-physical": "--to-datadir", "files": "--to",
               "mariadb-logical": "--to-mariadb", "mariadb-physical": "--to-datadir", "redis-rdb": "--to-redis"}


@task(name="describe-backup", **RETRYABLE)
def describe_backup(vault: VaultConfig, backup_id: str, has_dsn: bool, has_datadir: bool) -> str:
    """The kind of a DONE backup, checked against the restore target that was given.

    Example:
        ```python
        describe_backup(VaultTarget.load("VAULT"), "20261122T001120Z-a1b2c3", True, False)
        ```
    """
    kind = vault.open_vault().require_done(backup_id).kind
    wanted = {"postgres-logical": has_dsn, "postgres-physical": has_datadir}.get(kind)
    if not wanted:
        how = _TARGET_FOR.get(kind, "the restore of the backup it belongs to")
        raise ConfigError(f"backup {backup_id} is a {kind} backup", hint=f"restore it with {how}")
    return kind


@task(name="retrieve-archived", **RETRYABLE)
def retrieve_archived(vault: VaultConfig, backup_id: str) -> dict:
    """Request the retrieval of a backup's chunks in archive storage classes (GLACIER, DEEP_ARCHIVE)
    and wait until they are readable; nothing to do for a backup in instant tiers.

    Example:
        ```python
        retrieve_archived(VaultTarget.load("VAULT"), "20261122T001120Z-a1b2c3")
        ```
    """
    from seawall.retrieval import retrieve

    v = vault.open_vault()
    return retrieve(v, v.require_done(backup_id))
