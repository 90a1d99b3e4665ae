"""PostgreSQL commands: `backup postgres`, the PostgreSQL side of `restore`, and `wal-check`.

(`wal-push` / `wal-get` live in seawall/cli/wal.py: PostgreSQL calls them per segment, so they
bypass typer entirely.)
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
    unlock_ahead,
    vault_param,
)
from seawall.cli.output import console, fail, handled_errors, print_json, progress_bars
from seawall.errors import ExitCode
from seawall.units import human_bytes, human_seconds


def target_spec(time: str | None, lsn: str | None, name: str | None, xid: str | None,
                target: str | None = None) -> str:
    """At most one recovery target, as `kind:value`, `immediate` (or `latest`)."""
    if target is not None and target != "immediate":
        fail(f"--target takes immediate, not {target!r} (use --target-time/-lsn/-name/-xid for the others)")
    given = [(k, v) for k, v in (("time", time), ("lsn", lsn), ("name", name), ("xid", xid)) if v]
    given += [("immediate", "")] if target else []
    if len(given) > 1:
        fail("give at most one of --target, --target-time, --target-lsn, --target-name, --target-xid")
    if not given:
        return "latest"
    return given[0][0] if given[0][0] == "immediate" else f"{given[0][0]}:{given[0][1]}"


def backup_postgres_cmd(
    dsn: str = typer.Option(..., "--dsn", help="libpq conninfo or postgresql:// URI of the server."),
    vault: str = VaultOpt,
    mode: str = typer.Option("logical", "--mode", help="logical (pg_dump) or physical (base backup + WAL)."),
    dataset: str | None = typer.Option(None, help="Dataset name (default: pg-<dbname> / pg-cluster-<host>-<port>)."),
    jobs: int | None = typer.Option(None, "--jobs", "-j", help="Logical: parallel pg_dump jobs (default 2); "
                                    "physical datadir: reader threads (default: the CPU count)."),
    with_passwords: bool = typer.Option(False, "--with-passwords",
                                        help="Logical: also save the roles' password verifiers (superuser)."),
    method: str = typer.Option("datadir", "--method", help="Physical: datadir (read the data directory on "
                               "this host: parallel, incremental, page checksums) or basebackup (pg_basebackup)."),
    full: bool = typer.Option(False, "--full", help="Physical datadir: read every file and page (no reuse of "
                              "the previous backup)."),
    primary_dsn: str | None = typer.Option(None, "--primary-dsn", help="Physical datadir from a standby: its "
                                           "primary, if not the one it streams from (no password: --dsn's is used)."),
    compress_level: int = typer.Option(1, "--compress-level", min=-100, max=19, help="Physical datadir: zstd level "
                                       "of new blocks; 0 stores them uncompressed (faster, more bytes stored), "
                                       "negative levels are zstd's fast ones."),
    passphrase_file: Path | None = PassFileOpt, json_out: bool = JsonOpt,
) -> None:
    """Back up PostgreSQL: one database (logical, with the roles it needs) or the whole cluster (physical)."""
    with handled_errors():
        passphrase = load_passphrase(passphrase_file)
        check_dataset(dataset)
        if method not in ("datadir", "basebackup"):
            fail(f"--method takes datadir or basebackup, not {method!r}")
        unlock_ahead(vault, passphrase)
        from flows.backup import backup_postgres
        from seawall.cli.app import manifest_row

        if jobs is not None and jobs < 1:
            fail(f"--jobs takes a number of at least 1, not {jobs}")
        jobs = jobs or (2 if mode == "logical" else (os.cpu_count() or 2))
        source = model("postgres")(dsn=dsn)  # a password in the DSN moves into a secret field
        with progress_bars(not json_out):
            physical = {"method": method, "full": full, "primary_dsn": primary_dsn,
                        "compress_level": compress_level} if mode == "physical" else {}
            manifest = run_flow(backup_postgres, source=source, vault=vault_param(vault), mode=mode, dataset=dataset,
                                jobs=jobs, with_passwords=with_passwords, **physical)
        if json_out:
            print_json(manifest_row(manifest) | {"source": _public_source(manifest.source)})
        else:
            s = manifest.stats
            console.print(f"backup {manifest.backup_id} of {manifest.dataset} ({manifest.kind}): "
                          f"{human_bytes(s.bytes_total)}, {human_bytes(s.stored_bytes_new)} new in the vault, "
                          f"{human_seconds(manifest.duration_s)}", highlight=False)
            if manifest.source.get("method") == "datadir":
                console.print(f"  {s.files_unchanged} of {s.files} files unchanged, {human_bytes(s.bytes_read)} read; "
                              f"{manifest.source.get('reuse')}", highlight=False)
            for line in manifest.source.get("warnings") or []:
                console.print(f"[yellow]warning[/]: {line}", highlight=False)


def _public_source(source: dict) -> dict:
    keep = ("dbname", "server_version", "system_identifier", "timeline", "start_lsn", "stop_lsn",
            "start_wal_file", "stop_wal_file", "stop_time", "method", "reuse", "warnings", "page_errors")
    out = {k: source[k] for k in keep if k in source}
    if "tables" in source:
        out["tables"] = {t: {"rows": v.get("rows"), "checksum": v.get("checksum")} for t, v in source["tables"].items()}
    return out


def restore_postgres_cmd(backup_id: str, vault: str, to_dsn: str | None, to_datadir: Path | None,
                         port: int | None, target: str, leave_running: bool, jobs: int, json_out: bool,
                         tier: dict | None = None, options: dict | None = None) -> None:
    from flows.restore import restore_postgres

    options = dict(options or {})
    options["tablespace_map"] = _pairs(options.get("tablespace_map"), "--tablespace-map")
    target_db = model("postgres")(dsn=to_dsn) if to_dsn else None
    with progress_bars(not json_out):
        result = run_flow(restore_postgres, backup_id=backup_id, vault=vault_param(vault), to_dsn=target_db,
                          to_datadir=str(to_datadir.absolute()) if to_datadir else None, port=port,
                          target=target, leave_running=leave_running, jobs=jobs, **options)
    if json_out:
        print_json(result | {"tier": tier} if isinstance(result, dict) else result)
    else:
        where = target_db.display() if target_db else str(to_datadir)
        console.print(f"restored {backup_id} into {where}" + (f" (target {target})" if to_datadir else ""))
        files = result.get("files") if isinstance(result, dict) else None
        if files and "removed" in files:  # a delta restore: what it had to write
            console.print(f"delta: {files['files_written']} of {files['files']} files written, {files['removed']} "
                          f"paths removed, {human_bytes(files['bytes_fetched'])} fetched", highlight=False)


def _pairs(items: list[str] | None, option: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        old, sep, new = item.partition("=")
        if not sep or not old or not new:
            fail(f"{option} takes OLD=NEW, not {item!r}")
        out[old] = new
    return out


def wal_check_cmd(
    vault: str = VaultOpt,
    backup_id: str | None = typer.Option(None, "--backup", help="Check from this base backup (default: oldest)."),
    dsn: str | None = typer.Option(None, "--dsn", help="Server to ask for its current WAL position."),
    passphrase_file: Path | None = PassFileOpt, json_out: bool = JsonOpt,
) -> None:
    """Check the WAL archive for gaps: "lost" (a later segment exists) vs "not yet archived"."""
    from seawall.postgres.windows import wal_check_for_backups

    with handled_errors():
        passphrase = load_passphrase(passphrase_file)
        report = wal_check_for_backups(vault, passphrase, backup_id=backup_id, dsn=dsn)
        if json_out:
            print_json(report)
        else:
            _print_wal_report(report)
    if not report.get("ok", False):
        raise typer.Exit(ExitCode.INTEGRITY)


def _print_wal_report(report: dict) -> None:
    if report.get("ok"):
        console.print(f"[green]ok[/]: WAL continuous {report.get('summary', '')}", highlight=False)
        return
    console.print(f"[red]WAL gap[/]: {report.get('summary', '')}", highlight=False)
    for line in report.get("problems", []):
        console.print(f"  {line}", highlight=False)


def register(app: typer.Typer, backup_app: typer.Typer) -> None:
    backup_app.command("postgres")(backup_postgres_cmd)
    app.command("wal-check")(wal_check_cmd)
    app.command("wal-push", help="PostgreSQL archive_command: seawall wal-push %p --vault URL")(_wal_stub)
    app.command("wal-get", help="PostgreSQL restore_command: seawall wal-get %f %p --vault URL")(_wal_stub)
    app.command("wal-async", help="List or stop the async WAL push/prefetch daemons: seawall wal-async status|stop")(
        _wal_stub)


def _wal_stub() -> None:
    """Handled by the fast entry point before typer starts (listed here for --help)."""
    console.print("run as: seawall wal-push PATH --vault URL | seawall wal-get NAME DEST --vault URL")
