"""`seawall verify-restore` (restore into a scratch target and check the data) and `seawall status`.

`verify-restore` runs the `restore-verification` flow: exit 0 when VERIFIED, 3 when a check failed
or the restore found corrupt/missing data, 2 for bad input (no backup, target outside the window,
port in use, no PostgreSQL server binaries). `status` reads the verification ledger: per dataset
the last backup, the last verified-restorable backup and its age, the last RTO and RPO.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from seawall.cli.common import (
    JsonOpt,
    PassFileOpt,
    VaultOpt,
    load_passphrase,
    model,
    open_vault_cli,
    run_reported,
    vault_param,
)
from seawall.cli.output import console, exit_if_corrupt, fail, handled_errors, print_json
from seawall.units import human_seconds

_STATUS_COLOUR = {"pass": "green", "fail": "red", "error": "red", "VERIFIED": "green", "FAILED": "red"}
DAY = 86400.0


def parse_time(text: str | None) -> datetime | None:
    """`--target-time` as a datetime (ISO 8601; the flow insists on a timezone)."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        fail(f"invalid --target-time {text!r}: use ISO 8601 with a timezone, e.g. 2026-11-22T01:00:00Z")


def _print_report(report) -> None:
    table = Table("check", "table", "status", "seconds", "detail")
    for c in report.checks:
        colour = _STATUS_COLOUR.get(c.status, "yellow")
        table.add_row(c.name, c.table or "", f"[{colour}]{c.status}[/]", f"{c.seconds:.2f}", c.detail[:120])
    if report.checks:
        console.print(table)
    colour = _STATUS_COLOUR[report.status]
    rpo = f"{human_seconds(report.rpo_s)} ({report.rpo_source})" if report.rpo_s is not None else "-"
    console.print(f"[{colour}]{report.status}[/] backup {report.backup_id} ({report.kind}) of {report.dataset} "
                  f"to {report.target}: RTO restore {human_seconds(report.rto_restore_s)}, to verified "
                  f"{human_seconds(report.rto_verified_s)}; RPO {rpo}", highlight=False)


def verify_restore_cmd(
    vault: str = VaultOpt,
    dataset: str = typer.Option(..., "--dataset", help="Dataset whose backup is restored and checked."),
    backup: str = typer.Option("latest", "--backup", help="latest, random, or a backup id."),
    target_time: str | None = typer.Option(None, "--target-time", help="Physical: PITR to this ISO 8601 time."),
    scratch_dsn: str | None = typer.Option(None, "--scratch-dsn", help="Logical: restore on this server, in a "
                                           "new database dropped afterwards (default: a throwaway cluster)."),
    scratch_port: int | None = typer.Option(None, "--scratch-port", help="Port of the throwaway cluster."),
    suites: Path | None = typer.Option(None, "--suites", help="Folder of Great Expectations suite JSON files."),
    jobs: int = typer.Option(2, "--jobs", "-j", help="Logical: parallel pg_restore jobs."),
    passphrase_file: Path | None = PassFileOpt, json_out: bool = JsonOpt,
) -> None:
    """Restore a backup into a scratch target, check the data, and record RTO/RPO in the vault."""
    from seawall.ledger import VerificationFailed

    with handled_errors():
        load_passphrase(passphrase_file)
        from flows.restore_verification import verify_restore

        params = dict(vault=vault_param(vault), dataset=dataset, backup=backup, target_time=parse_time(target_time),
                      scratch=model("postgres")(dsn=scratch_dsn) if scratch_dsn else None, scratch_port=scratch_port,
                      suites=str(suites.absolute()) if suites else None, jobs=jobs)
        run_reported(verify_restore, params, failure=VerificationFailed, show=_print_report, json_out=json_out,
                     progress=not json_out)


def _age_cell(age: float | None) -> str:
    if age is None:
        return "[red]never verified[/]"
    colour = "green" if age <= DAY else "yellow" if age <= 7 * DAY else "red"
    return f"[{colour}]{human_seconds(age)}[/]"


def status_cmd(vault: str = VaultOpt, passphrase_file: Path | None = PassFileOpt, json_out: bool = JsonOpt) -> None:
    """Per dataset: last backup, last verified-restorable backup and its age, last RTO and RPO."""
    from seawall.ledger import status_rows
    from seawall.retrieval import add_tiers

    with handled_errors():
        v = open_vault_cli(vault, passphrase_file)
        rows = add_tiers(v, status_rows(v))
        if json_out:
            print_json({"vault": v.url, "datasets": rows})
        else:
            _print_status(rows)
        exit_if_corrupt(v.url, [c["object"] for r in rows for c in r["corrupt"]])


def _print_status(rows: list[dict]) -> None:
    table = Table("dataset", "last backup", "last verified backup", "age", "last verification", "RTO",
                  "RTO verified", "RPO", "tier", "RTO with retrieval")
    for r in rows:
        status = r["last_verification_status"]
        colour = _STATUS_COLOUR.get(status or "", "yellow")
        table.add_row(r["dataset"], r["last_backup_id"] or "-", r["last_verified_backup_id"] or "-",
                      _age_cell(r["verified_backup_age_s"]), f"[{colour}]{status or 'none'}[/]",
                      human_seconds(r["last_rto_s"]), human_seconds(r["last_rto_verified_s"]),
                      human_seconds(r["last_rpo_s"]), _tier_cell(r), human_seconds(r["implied_rto_s"]))
        for c in r["corrupt"]:
            why = c["reason"] if c["object"] in c["reason"] else f"{c['object']}: {c['reason']}"
            table.add_row(escape(r["dataset"]), "[bold red]CORRUPT[/]", escape(why), "", "", "", "", "", "", "")
    console.print(table)


def _tier_cell(row: dict) -> str:
    tier = row["last_backup_tier"]
    if tier is None:
        return "-"
    archived = row["last_backup_archived_objects"]
    return f"[yellow]{tier} ({archived} archived)[/]" if archived else tier


def register(app: typer.Typer) -> None:
    """Add `verify-restore` and `status` to the seawall app."""
    app.command("verify-restore")(verify_restore_cmd)
    app.command("status")(status_cmd)
