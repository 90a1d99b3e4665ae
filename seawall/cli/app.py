"""The typer application: vault commands (init, backup, list, verify, restore) and the demo."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from seawall.cli import pg_options as pgopt
from seawall.cli.common import (
    JsonOpt,
    PassFileOpt,
    VaultOpt,
    check_dataset,
    load_passphrase,
    open_vault_cli,
    run_flow,
    unlock_ahead,
    vault_param,
)
from seawall.cli.output import (
    State,
    console,
    exit_if_corrupt,
    fail,
    handled_errors,
    install_log_lines,
    install_stop_handlers,
    print_json,
    progress_bars,
)
from seawall.cli.ssh import ExcludeOpt, IdentityOpt, KnownHostsOpt, OneFsOpt
from seawall.errors import ExitCode
from seawall.units import human_bytes, human_seconds

if TYPE_CHECKING:  # --help and usage errors need neither (they load pydantic and the crypto stack)
    from seawall.manifest import Manifest
    from seawall.vault import CorruptManifest

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="seawall: backup and disaster recovery as Prefect flows, with evidence that recovery works.")
backup_app = typer.Typer(no_args_is_help=True, help="Back up a source into a vault.")
app.add_typer(backup_app, name="backup")


@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
         verbose: bool = typer.Option(False, "--verbose", help="Show Prefect's run logs.")) -> None:
    State.debug, State.verbose = debug, verbose


@app.command()
def init(url: str = typer.Argument(..., help="Where to create the vault."),
         passphrase_file: Path | None = PassFileOpt, json_out: bool = JsonOpt) -> None:
    """Create a new, empty vault (refuses a location that already has one)."""
    from seawall.crypto import require_passphrase
    from seawall.vault import init_vault

    with handled_errors():
        vault = init_vault(url, require_passphrase(load_passphrase(passphrase_file)))
        if json_out:
            print_json({"vault": vault.url, "vault_id": vault.config.vault_id})
        else:
            console.print(f"initialised vault {vault.url} (id {vault.config.vault_id})")


def manifest_row(m: Manifest) -> dict:
    return {"dataset": m.dataset, "backup_id": m.backup_id, "kind": m.kind, "status": str(m.status),
            "started_at": m.started_at.isoformat(), "finished_at": m.finished_at.isoformat() if m.finished_at else None,
            "duration_s": m.duration_s, "size": m.stats.bytes_total, "stored_bytes_new": m.stats.stored_bytes_new,
            "files": m.stats.files, "skipped": len(m.stats.skipped), "error": m.error, "object": m.key}


def corrupt_row(c: CorruptManifest) -> dict:
    """A manifest that did not open, in the shape of `manifest_row` (status CORRUPT, reason in error)."""
    return {"dataset": c.dataset, "backup_id": c.backup_id, "kind": None, "status": "CORRUPT", "started_at": None,
            "finished_at": None, "duration_s": None, "size": None, "stored_bytes_new": None, "files": None,
            "skipped": None, "error": c.reason, "object": c.key}


@backup_app.command("files")
def backup_files_cmd(path: str = typer.Argument(..., help="Folder to back up, or ssh://user@host[:port]/path."),
                     vault: str = VaultOpt,
                     dataset: str | None = typer.Option(None, help="Dataset name (default: the folder's name, "
                                                        "www for /srv/www; host-folder over SSH)."),
                     identity: Path | None = IdentityOpt, known_hosts: Path | None = KnownHostsOpt,
                     exclude: list[str] | None = ExcludeOpt, one_file_system: bool = OneFsOpt,
                     passphrase_file: Path | None = PassFileOpt, json_out: bool = JsonOpt) -> None:
    """Back up a local folder or one on an SSH host (incremental against the dataset's last backup)."""
    if path.startswith("ssh://"):
        from seawall.cli.ssh import backup_ssh_cmd

        backup_ssh_cmd(path, vault, dataset, identity, known_hosts, exclude, one_file_system,
                       passphrase_file, json_out)
        return
    path = Path(path)
    with handled_errors():
        if exclude or one_file_system:
            fail("--exclude and --one-file-system apply to ssh:// sources only")
        load_passphrase(passphrase_file)
        from seawall.sources.paths import check_source

        check_source(str(path.absolute()))  # usage errors before any flow machinery starts
        check_dataset(dataset)
        from flows.backup import backup_files

        with progress_bars(not json_out):
            manifest = run_flow(backup_files, path=str(path.absolute()), vault=vault_param(vault), dataset=dataset)
        if json_out:
            print_json(manifest_row(manifest) | {"skipped_items": manifest.stats.skipped})
        else:
            s = manifest.stats
            console.print(f"backup {manifest.backup_id} of {manifest.dataset}: {s.files} files, "
                          f"{human_bytes(s.bytes_total)}, {human_bytes(s.stored_bytes_new)} new in the vault, "
                          f"{human_seconds(manifest.duration_s)}")
            for item in s.skipped:
                console.print(f"[yellow]skipped:[/] {item}", highlight=False)
    if manifest.stats.skipped:
        raise typer.Exit(ExitCode.PARTIAL)


@app.command("list")
def list_cmd(vault: str = VaultOpt, dataset: str | None = typer.Option(None, help="Only this dataset."),
             passphrase_file: Path | None = PassFileOpt, json_out: bool = JsonOpt) -> None:
    """List backups (every status; only DONE backups are restorable)."""
    with handled_errors():
        v = open_vault_cli(vault, passphrase_file)
        backups, corrupt = v.catalog(dataset)
        if json_out:
            rows = [manifest_row(m) for m in backups] + [corrupt_row(c) for c in corrupt]
            print_json({"vault": v.url, "backups": rows})
        else:
            _print_list(backups, corrupt)
        exit_if_corrupt(v.url, [c.key for c in corrupt])


def _print_list(backups: list[Manifest], corrupt: list[CorruptManifest]) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table("dataset", "backup id", "kind", "status", "started", "duration", "size", "added")
    for m in backups:
        colour = {"DONE": "green", "FAILED": "red"}.get(str(m.status), "yellow")
        table.add_row(m.dataset, m.backup_id, m.kind, f"[{colour}]{m.status}[/]",
                      f"{m.started_at:%Y-%m-%d %H:%M:%S}", human_seconds(m.duration_s),
                      human_bytes(m.stats.bytes_total), human_bytes(m.stats.stored_bytes_new))
    for c in corrupt:
        table.add_row(escape(c.dataset), escape(c.backup_id), "-", "[bold red]CORRUPT[/]",
                      escape(c.reason if c.key in c.reason else f"{c.key}: {c.reason}"), "", "", "")
    console.print(table)


@app.command()
def verify(vault: str = VaultOpt, backup_id: str | None = typer.Argument(None, help="Only this backup."),
           read_data: bool = typer.Option(False, "--read-data", help="Decrypt and hash every chunk."),
           passphrase_file: Path | None = PassFileOpt, json_out: bool = JsonOpt) -> None:
    """Verify backups: manifests, chunk presence, and with --read-data every chunk's content."""
    from seawall.verify import VaultCheckFailed

    with handled_errors():
        load_passphrase(passphrase_file)
        from flows.verify import verify_vault_flow

        try:
            with progress_bars(not json_out):
                report = run_flow(verify_vault_flow, vault=vault_param(vault), backup_id=backup_id,
                                  read_data=read_data)
        except VaultCheckFailed as exc:
            if json_out:
                print_json(exc.report.to_dict())
                raise typer.Exit(ExitCode.INTEGRITY) from None
            for b in exc.report.backups:
                for problem in b.problems:
                    console.print(f"[red]FAILED[/] {b.dataset}/{b.backup_id}: {problem}", highlight=False)
            for problem in exc.report.problems:
                console.print(f"[red]FAILED[/] vault: {problem}", highlight=False)
            raise
        if json_out:
            print_json(report.to_dict())
        else:
            checked = [b for b in report.backups if b.checked]
            console.print(f"[green]ok[/]: {len(checked)} backups verified"
                          + (f", {report.packs_read} packs and {report.chunks_read} chunks read "
                             f"({human_bytes(report.bytes_read)})" if read_data else ""))


@app.command()
def restore(backup_id: str = typer.Argument(..., help="Backup to restore (see `seawall list`)."),
            vault: str = VaultOpt,
            to: str | None = typer.Option(None, "--to", help="Files: empty or new folder to restore into, "
                                          "local or ssh://user@host[:port]/path."),
            identity: Path | None = IdentityOpt, known_hosts: Path | None = KnownHostsOpt,
            to_dsn: str | None = typer.Option(None, "--to-dsn", help="Logical: database to restore into "
                                              "(created if missing; must be empty)."),
            to_datadir: Path | None = typer.Option(None, "--to-datadir", help="Physical: new data directory."),
            to_mariadb: str | None = typer.Option(None, "--to-mariadb", help="MariaDB logical: mysql://... "
                                                  "database to restore into (created if missing; must be empty)."),
            to_redis: str | None = typer.Option(None, "--to-redis", help="Redis: URL of a running, empty server."),
            port: int | None = typer.Option(None, "--port", help="Physical: port for the restored server."),
            target_time: str | None = typer.Option(None, "--target-time", help="PITR: ISO 8601 time with zone."),
            target_lsn: str | None = typer.Option(None, "--target-lsn", help="PITR: an LSN like 0/3000060."),
            target_name: str | None = typer.Option(None, "--target-name", help="PITR: a named restore point."),
            target_xid: str | None = typer.Option(None, "--target-xid", help="PITR: a transaction id."),
            target_position: str | None = typer.Option(None, "--target-position", help="MariaDB PITR: binlog "
                                                       "FILE:POS to stop at."),
            roll_forward: bool = typer.Option(False, "--roll-forward", help="MariaDB: replay every archived "
                                              "binlog after the backup."),
            stopped: bool = typer.Option(False, "--stopped", help="Physical: stop the server after recovery."),
            jobs: int | None = typer.Option(None, "--jobs", "-j", help="Parallel jobs: pg_restore (logical, "
                                            "default 2), files written at once (files, physical; default 3)."),
            delta: bool = pgopt.DeltaOpt, trust_mtime: bool = pgopt.TrustMtimeOpt, force: bool = pgopt.ForceOpt,
            target: str | None = pgopt.TargetOpt, target_timeline: str = pgopt.TimelineOpt,
            target_action: str = pgopt.ActionOpt, target_exclusive: bool = pgopt.ExclusiveOpt,
            no_archive: bool = pgopt.NoArchiveOpt, standby: bool = pgopt.StandbyOpt,
            primary_conninfo: str | None = pgopt.PrimaryOpt, tablespace_map: list[str] | None = pgopt.TablespaceOpt,
            roles: str = pgopt.RolesOpt, role_map: list[str] | None = pgopt.RoleMapOpt,
            passphrase_file: Path | None = PassFileOpt, json_out: bool = JsonOpt) -> None:
    """Restore a backup: a file tree (--to), a database (--to-dsn, --to-mariadb), a Redis server
    (--to-redis) or a cluster/server at a point in time (--to-datadir with --target-*). Never
    overwrites: targets must be new or empty, except with --delta (files and physical backups)."""
    with handled_errors():
        unlock_ahead(vault, load_passphrase(passphrase_file))
        destinations = [d for d in (to, to_dsn, to_datadir, to_mariadb, to_redis) if d is not None]
        if len(destinations) != 1:
            fail("give exactly one of --to PATH, --to-dsn DSN, --to-datadir DIR, --to-mariadb DSN or --to-redis URL")
        from seawall.cli.pg import restore_postgres_cmd, target_spec

        spec = target_spec(target_time, target_lsn, target_name, target_xid, target)  # before opening the vault
        delta_opts = _delta_options(delta, trust_mtime, force, to, to_datadir, jobs)  # before opening the vault
        _import_while_deriving(to)
        if to_mariadb or to_redis or (to_datadir and _is_mariadb(backup_id, vault)):
            if delta:
                fail("--delta is for file trees (--to) and PostgreSQL physical backups (--to-datadir)")
            _restore_source(backup_id, vault, to_mariadb, to_redis, to_datadir,
                            (target_time, target_position, roll_forward), json_out)
            return
        if to is not None and not to.startswith("ssh://") and not delta:
            from seawall.sources.files import check_restore_target

            check_restore_target(to)
        from seawall.cli.tiers import show_restore_tier

        tier = show_restore_tier(vault, backup_id, json_out)  # archive tiers: the wait and the RTO it implies
        if to is not None and to.startswith("ssh://"):
            from seawall.cli.ssh import restore_ssh

            restore_ssh(backup_id, vault, to, identity, known_hosts, json_out)
            return
        if to is not None:
            _restore_files(backup_id, vault, Path(to), json_out, tier, delta_opts | {"jobs": jobs or 3})
            return
        options = {"target_timeline": target_timeline, "target_action": target_action,
                   "target_exclusive": target_exclusive, "archive": not no_archive, "standby": standby,
                   "primary_conninfo": primary_conninfo or "", "tablespace_map": tablespace_map or [],
                   "roles": roles, "role_map": role_map or []} | (delta_opts if to_datadir else {})
        jobs = jobs or (3 if to_datadir else 2)
        restore_postgres_cmd(backup_id, vault, to_dsn, to_datadir, port, spec, not stopped, jobs, json_out, tier,
                             options)


def _import_while_deriving(to: str | None) -> None:
    """While the entry's scrypt still runs on its thread (`seawall.kdf_ahead`), import the flows
    module this restore imports anyway (pydantic, the models, psycopg): the first vault read below
    would otherwise wait for the key, then import (~7 ms of exec to flow, bench/CLI.md). Every
    branch below runs a flow of `flows.restore` (files, PostgreSQL, MariaDB, Redis), or of
    `flows.remote` (ssh:// targets); usage errors are found before this."""
    from seawall import kdf_ahead

    if not kdf_ahead.pending():
        return
    if to is not None and to.startswith("ssh://"):
        import flows.remote
    else:
        import flows.restore  # noqa: F401


def _is_mariadb(backup_id: str, vault: str) -> bool:
    from seawall.cli.sources import backup_kind

    return backup_kind(backup_id, vault) == "mariadb-physical"


def _restore_source(backup_id: str, vault: str, to_mariadb: str | None, to_redis: str | None,
                    to_datadir: Path | None, targets: tuple, json_out: bool) -> None:
    from seawall.cli import sources

    if to_redis:
        if any(targets):
            fail("a Redis snapshot restores as it was: drop --target-*/--roll-forward")
        sources.restore_redis_cmd(backup_id, vault, to_redis, json_out)
        return
    sources.restore_mariadb_cmd(backup_id, vault, to_mariadb, to_datadir, sources.until_spec(*targets), json_out)


def _delta_options(delta: bool, trust_mtime: bool, force: bool, to: str | None, to_datadir: Path | None,
                   jobs: int | None) -> dict:
    """The delta/parallel options of a files or physical restore (usage errors first)."""
    if (trust_mtime or force) and not delta:
        fail("--delta-trust-mtime and --force go with --delta")
    if delta and (to is None or to.startswith("ssh://")) and to_datadir is None:
        fail("--delta restores into a local folder (--to PATH) or a data directory (--to-datadir DIR)")
    if jobs is not None and jobs < 1:
        fail(f"--jobs must be at least 1, not {jobs}")
    if delta and to is not None:
        from seawall.sources.delta import check_delta_root

        check_delta_root(to)
    if to_datadir is None:
        return {"delta": delta, "trust_mtime": trust_mtime} if delta else {}
    return {"delta": delta, "trust_mtime": trust_mtime, "force": force}


def _restore_files(backup_id: str, vault: str, to: Path, json_out: bool, tier: dict, delta: dict) -> None:
    from flows.restore import restore_files

    with progress_bars(not json_out):
        done = run_flow(restore_files, backup_id=backup_id, vault=vault_param(vault), target=str(to.absolute()),
                        **delta)
    if json_out:
        print_json({"backup_id": backup_id, "target": str(to.absolute())} | done | {"tier": tier})
    elif "delta" in done:
        d = done["delta"]
        console.print(f"restored {backup_id} into {to.absolute()} (delta): {d['files_written']} of {d['files']} "
                      f"files written, {d['removed']} paths removed, {human_bytes(d['bytes_fetched'])} fetched")
    else:
        console.print(f"restored {done['files']} files of {backup_id} into {to.absolute()}")
        for item in done["skipped_items"]:
            console.print(f"[yellow]not restored:[/] {item}", highlight=False)
    if done["skipped_items"]:
        raise typer.Exit(ExitCode.PARTIAL)


@app.command()
def demo(keep: bool = typer.Option(False, "--keep", help="Keep the demo vaults and folders for exploring.")) -> None:
    """Run the whole pipeline on embedded defaults (no configuration needed)."""
    from seawall.cli.demo import run_demo

    with handled_errors():
        run_demo(keep=keep)


def run() -> None:
    from seawall.redact import install_logging

    install_logging()  # log records (Prefect's API logs among them) are redacted at creation
    install_stop_handlers()
    install_log_lines()
    hot = _hot_command(sys.argv[1:])
    if hot is not None:
        with hot:
            app()
        return
    # Command groups live in their own modules; each registers itself on the app.
    from seawall.cli import (
        copy,
        deploy,
        drill,
        keys,
        pg,
        readiness,
        repair,
        retention,
        sources,
        unlock,
        verify_restore,
    )

    pg.register(app, backup_app)
    sources.register(app, backup_app)
    for module in (copy, verify_restore, retention, deploy, drill, keys, readiness, unlock, repair):
        module.register(app)
    app()


def _hot_command(argv: list[str]) -> contextlib.AbstractContextManager | None:
    """For `seawall restore ...` and `seawall backup postgres ...` (every delta restore and physical
    backup; the benchmarks run them back to back): a context in which the app holds that one
    command, else None (any other command line: every command is registered).

    typer builds a click command, with every parameter, for each command it holds before it
    parses anything (~20-30 ms for the 32 commands), and the command modules are imported to
    register theirs. What one command parses, prints (help, usage errors) and does does not
    depend on the others. Global options (`seawall --debug restore`) take the ordinary path.
    """
    if argv[:1] == ["restore"]:
        return _only(app, [info for info in app.registered_commands if info.callback is restore], [])
    if argv[:2] == ["backup", "postgres"]:
        from seawall.cli import pg

        backup = [info for info in app.registered_groups if info.typer_instance is backup_app]
        return _only(app, [], backup, (backup_app, pg.backup_postgres_cmd, "postgres"))
    return None


@contextlib.contextmanager
def _only(typer_app: typer.Typer, commands: list, groups: list, sub: tuple | None = None) -> Iterator[None]:
    """`typer_app` holding only `commands` and `groups` (and `sub`: a group, the one command it is
    given here and its name) while the block runs; put back as it was afterwards."""
    saved = typer_app.registered_commands, typer_app.registered_groups
    sub_saved = sub[0].registered_commands if sub else None
    typer_app.registered_commands, typer_app.registered_groups = commands, groups
    if sub:
        sub[0].registered_commands = []
        sub[0].command(sub[2])(sub[1])
    try:
        yield
    finally:
        typer_app.registered_commands, typer_app.registered_groups = saved
        if sub:
            sub[0].registered_commands = sub_saved
