"""Tasks for PostgreSQL: preflight, logical and physical backups, restores. Thin calls into
seawall.postgres; each is idempotent (a retry reuses the backup id; restores refuse non-empty
targets, so a retry after a crash starts from a clean target the task itself removed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from seawall.configs.postgres import PostgresConfig
from seawall.configs.vault import VaultConfig
from seawall.errors import ConfigError
from seawall.lease import shared_lease
from seawall.manifest import Manifest
from seawall.naming import slug
from seawall.preflight import CheckResult, require_critical, run_checks
from seawall.progress import reporter
from tasks.policy import RETRYABLE
from tasks.runtime import task
from tasks.slots import vault_slot

if TYPE_CHECKING:  # the PostgreSQL modules load psycopg: imported in the tasks that use them
    from seawall.postgres.recovery import CopyOptions, RecoveryTarget

MODES = ("logical", "physical")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError(f"unknown backup mode {mode!r}", hint="use logical or physical")
    return mode


PHYSICAL_METHODS = ("datadir", "basebackup")


def check_method(method: str) -> str:
    if method not in PHYSICAL_METHODS:
        raise ConfigError(f"unknown physical backup method {method!r}", hint="use datadir or basebackup")
    return method


def default_dataset(source: PostgresConfig, mode: str) -> str:
    """`pg-<dbname>` for logical backups, `pg-cluster-<host>-<port>` for physical ones."""
    params = source.get_pgconn().params()
    if mode == "logical":
        return slug(f"pg-{params.get('dbname') or params.get('user') or 'postgres'}")
    host = params.get("host") or "local"
    host = "local" if host.startswith("/") else host
    return slug(f"pg-cluster-{host}-{params.get('port') or 5432}")


def _check_connects(source: PostgresConfig) -> str:
    with source.get_connection() as conn:
        return conn.execute("SELECT version()").fetchone()[0].split(" on ")[0]


@task(name="preflight-postgres", **RETRYABLE)
def preflight_postgres(source: PostgresConfig, vault: VaultConfig, mode: str,
                       physical: dict | None = None) -> list[CheckResult]:
    """Check the server, its archiving settings (physical) and the vault before writing anything.

    Example:
        ```python
        preflight_postgres(PostgresSource.load("BLOCK_NAME"), VaultTarget.load("VAULT"), "physical")
        ```
    """
    checks = [("server reachable", lambda: _check_connects(source), True),
              ("vault opens", lambda: vault.open_vault().config.vault_id, True)]
    if mode == "physical":
        from seawall.postgres.physical import check_archiving

        opts = physical or {}
        checks.append(("WAL archiving configured", lambda: check_archiving(
            source.get_pgconn(), method=opts.get("method", "datadir"), primary_dsn=opts.get("primary_dsn")), True))
    results = run_checks(checks)
    require_critical(results)
    return results


@task(name="backup-postgres", **RETRYABLE)
def backup_postgres_task(source: PostgresConfig, vault: VaultConfig, mode: str, dataset: str,
                         backup_id: str, jobs: int = 2, with_passwords: bool = False,
                         physical: dict | None = None) -> Manifest:
    """Take a logical (pg_dump) or physical (data directory, or pg_basebackup) backup into the vault.

    `physical` holds the physical options: `method` (datadir | basebackup), `full`, `primary_dsn`,
    `compress_level` (datadir: zstd level of new blocks, 0 = uncompressed).

    Example:
        ```python
        backup_postgres_task(PostgresSource.load("DB"), VaultTarget.load("VAULT"), "logical", "pg-app", bid)
        ```
    """
    v = vault.open_vault()
    conn = source.get_pgconn()
    with vault_slot(), shared_lease(v, f"backup {dataset}"):  # retention's GC waits until we are done
        if mode == "logical":
            from seawall.postgres.logical import backup_logical  # pg_dump's side: not a physical backup's

            parent = v.latest_backup(dataset, kind="postgres-logical")
            return backup_logical(v, conn, dataset, jobs=jobs, backup_id=backup_id, parent=parent,
                                  progress=reporter("pg_dump"), passwords=with_passwords)
        from seawall.postgres.physical import backup_physical

        opts = physical or {}
        return backup_physical(v, conn, dataset, backup_id=backup_id, progress=reporter("physical backup"),
                               method=opts.get("method", "datadir"), jobs=jobs, full=bool(opts.get("full")),
                               primary_dsn=opts.get("primary_dsn"), compress_level=int(opts.get("compress_level", 1)))


@task(name="restore-postgres-logical", **RETRYABLE)
def restore_logical_task(vault: VaultConfig, backup_id: str, target: PostgresConfig, jobs: int = 2,
                         roles: str = "create", role_map: dict[str, str] | None = None) -> list:
    """pg_restore a logical backup into a new (or empty) database and check rows and checksums.

    Example:
        ```python
        restore_logical_task(VaultTarget.load("VAULT"), "20261122T001120Z-a1b2c3", PostgresSource.load("SCRATCH"))
        ```
    """
    from seawall.postgres.logical_restore import restore_logical
    from seawall.postgres.roles import RoleOptions

    v = vault.open_vault()
    manifest = v.require_done(backup_id)
    options = RoleOptions(roles, role_map or {})
    return restore_logical(v, manifest, target.get_pgconn(), jobs=jobs, progress=reporter("pg_restore"),
                           role_options=options)


@task(name="restore-postgres-physical", **RETRYABLE)
def restore_physical_task(vault: VaultConfig, backup_id: str, datadir: str, port: int | None,
                          target: RecoveryTarget | None, leave_running: bool = True,
                          copy: CopyOptions | None = None) -> dict:
    """Restore a base backup into a new data directory and replay WAL to the target.

    Example:
        ```python
        restore_physical_task(VaultTarget.load("VAULT"), bid, "/srv/pg-restore", 5440, RecoveryTarget.parse("latest"))
        ```
    """
    from seawall.postgres.recovery import restore_physical

    v = vault.open_vault()
    manifest = v.require_done(backup_id)
    return restore_physical(v, manifest, datadir, port=port, target=target, vault_url=vault.url,
                            passphrase=vault.get_passphrase(), leave_running=leave_running, copy=copy)
