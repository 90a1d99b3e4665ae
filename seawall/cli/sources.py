"""MariaDB/MySQL and Redis commands: `backup mariadb`, `backup redis`, `binlog-archive`, and their
side of `restore` (`--to-mariadb`, `--to-redis`, `--to-datadir` for a mariadb-physical backup).

Passwords: in the DSN/URL (moved into a secret at once), or from `SEAWALL_MARIADB_PASSWORD` /
`SEAWALL_REDIS_PASSWORD`, so they need not appear on a command line at all.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from seawall.cli.common import (
    JsonOpt,
    PassFileOpt,
    VaultOpt,
    check_dataset,
    load_passphrase,
    model,
    run_flow,
    vault_param,
)
from seawall.cli.output import console, fail, handled_errors, print_json, progress_bars
from seawall.units import human_bytes, human_seconds

MARIADB_PASSWORD_ENV = "SEAWALL_MARIADB_PASSWORD"
REDIS_PASSWORD_ENV = "SEAWALL_REDIS_PASSWORD"


def mariadb_source(dsn: str):
    from pydantic import SecretStr

    source = model("mariadb")(dsn=dsn)
    if source.password is None and os.environ.get(MARIADB_PASSWORD_ENV):
        source.password = SecretStr(os.environ[MARIADB_PASSWORD_ENV])
    return source


def redis_source(url: str):
    from pydantic import SecretStr

    source = model("redis")(url=url)
    if source.password is None and os.environ.get(REDIS_PASSWORD_ENV):
        source.password = SecretStr(os.environ[REDIS_PASSWORD_ENV])
    return source


def _print_backup(manifest, json_out: bool) -> None:
    from seawall.cli.app import manifest_row

    if json_out:
        keep = ("database", "server_version", "redis_version", "log_bin", "binlog", "keyspace", "digest")
        source = {k: manifest.source[k] for k in keep if k in manifest.source}
        if "tables" in manifest.source:
            source["tables"] = {t: {"rows": v["rows"], "checksum": v["checksum"]}
                                for t, v in manifest.source["tables"].items()}
        print_json(manifest_row(manifest) | {"source": source})
        return
    s = manifest.stats
    console.print(f"backup {manifest.backup_id} of {manifest.dataset} ({manifest.kind}): "
                  f"{human_bytes(s.bytes_total)}, {human_bytes(s.stored_bytes_new)} new in the vault, "
                  f"{human_seconds(manifest.duration_s)}", highlight=False)


def backup_mariadb_cmd(
    dsn: str = typer.Option(..., "--dsn", help="mysql://user@host:port/database (password: "
                            f"{MARIADB_PASSWORD_ENV})."),
    vault: str = VaultOpt,
    mode: str = typer.Option("logical", "--mode", help="logical (mariadb-dump) or physical (mariadb-backup)."),
    dataset: str | None = typer.Option(None, help="Dataset name (default: mariadb-<database> / "
                                       "mariadb-server-<host>-<port>)."),
    passphrase_file: Path | None = PassFileOpt, json_out: bool = JsonOpt,
) -> None:
    """Back up MariaDB/MySQL: one database (logical) or the whole server (physical, on its host)."""
    with handled_errors():
        load_passphrase(passphrase_file)
        check_dataset(dataset)
        from flows.backup import backup_mariadb

        with progress_bars(not json_out):
            manifest = run_flow(backup_mariadb, source=mariadb_source(dsn), vault=vault_param(vault), mode=mode,
                                dataset=dataset)
        _print_backup(manifest, json_out)


def backup_redis_cmd(
    url: str = typer.Option(..., "--url", help=f"redis://[user@]host:port/db (password: {REDIS_PASSWORD_ENV})."),
    vault: str = VaultOpt,
    dataset: str | None = typer.Option(None, help="Dataset name (default: redis-<host>-<port>)."),
    passphrase_file: Path | None = PassFileOpt, json_out: bool = JsonOpt,
) -> None:
    """Snapshot a Redis server (RDB) into the vault."""
    with handled_errors():
        load_passphrase(passphrase_file)
        check_dataset(dataset)
        from flows.backup import backup_redis

        with progress_bars(not json_out):
            manifest = run_flow(backup_redis, source=redis_source(url), vault=vault_param(vault), dataset=dataset)
        _print_backup(manifest, json_out)


def binlog_archive_cmd(
    dsn: str = typer.Option(..., "--dsn", help="mysql://user@host:port/ of the server."),
    vault: str = VaultOpt,
    dataset: str = typer.Option(..., "--dataset", help="Dataset whose backups the binlogs roll forward."),
    passphrase_file: Path | None = PassFileOpt, json_out: bool = JsonOpt,
) -> None:
    """Archive the server's closed binary logs (run it every few minutes for point-in-time restores)."""
    with handled_errors():
        load_passphrase(passphrase_file)
        from flows.backup import archive_mariadb_binlogs

        manifest = run_flow(archive_mariadb_binlogs, source=mariadb_source(dsn), vault=vault_param(vault),
                            dataset=dataset)
        files = manifest.source["files"] if manifest else {}
        if json_out:
            print_json({"dataset": dataset, "backup_id": manifest.backup_id if manifest else None, "files": files})
        else:
            console.print(f"archived {len(files)} binlog(s)" + (f": {', '.join(files)}" if files else ""),
                          highlight=False)


def until_spec(target_time: str | None, target_position: str | None, roll_forward: bool) -> str:
    given = [g for g in (target_time, target_position, roll_forward or None) if g]
    if len(given) > 1:
        fail("give at most one of --target-time, --target-position, --roll-forward")
    if target_time:
        return f"time:{target_time}"
    if target_position:
        return f"position:{target_position}"
    return "latest" if roll_forward else "snapshot"


def restore_mariadb_cmd(backup_id: str, vault: str, to_dsn: str | None, to_datadir: Path | None, until: str,
                        json_out: bool) -> None:
    from flows.restore import restore_mariadb

    with progress_bars(not json_out):
        result = run_flow(restore_mariadb, backup_id=backup_id, vault=vault_param(vault),
                          to_dsn=mariadb_source(to_dsn) if to_dsn else None,
                          to_datadir=str(to_datadir.absolute()) if to_datadir else None, until=until)
    if json_out:
        print_json(result)
    else:
        where = result.get("target") or result.get("datadir")
        console.print(f"restored {backup_id} into {where}" + (f" (to {until})" if until != "snapshot" else ""),
                      highlight=False)


def restore_redis_cmd(backup_id: str, vault: str, to_url: str, json_out: bool) -> None:
    from flows.restore import restore_redis

    with progress_bars(not json_out):
        result = run_flow(restore_redis, backup_id=backup_id, vault=vault_param(vault), to_url=redis_source(to_url))
    if json_out:
        print_json(result)
    else:
        console.print(f"restored {backup_id} into {result['target']}: {sum(result['keys'].values())} keys",
                      highlight=False)


def backup_kind(backup_id: str, vault: str) -> str:
    """The kind of a backup (to route `--to-datadir` between PostgreSQL and MariaDB)."""
    from seawall.cli.common import open_vault_cli

    return open_vault_cli(vault, None).find_backup(backup_id).kind


def register(app: typer.Typer, backup_app: typer.Typer) -> None:
    backup_app.command("mariadb")(backup_mariadb_cmd)
    backup_app.command("redis")(backup_redis_cmd)
    app.command("binlog-archive")(binlog_archive_cmd)
