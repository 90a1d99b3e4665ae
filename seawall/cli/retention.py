"""`seawall retention`: print a retention plan with its reasons, and with --apply carry it out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from seawall.cli.common import JsonOpt, PassFileOpt, VaultOpt, load_passphrase, run_flow, vault_param
from seawall.cli.output import console, handled_errors, print_json
from seawall.errors import ConfigError
from seawall.units import human_bytes


def _count(name: str) -> Any:
    what = "newest backups" if name == "last" else f"{name} backups (newest of each of the last N periods)"
    return typer.Option(None, f"--keep-{name}", min=0, help=f"Keep N {what}.")


def retention_cmd(
    vault: str = VaultOpt,
    dry_run: bool = typer.Option(True, "--dry-run/--apply", help="Only print the plan (default), or apply it: "
                                 "delete the removed backups, then collect garbage."),
    keep_last: int | None = _count("last"),
    keep_hourly: int | None = _count("hourly"),
    keep_daily: int | None = _count("daily"),
    keep_weekly: int | None = _count("weekly"),
    keep_monthly: int | None = _count("monthly"),
    keep_yearly: int | None = _count("yearly"),
    keep_within: str | None = typer.Option(None, "--keep-within", help="Keep every backup within this "
                                           "duration of the newest one, e.g. 7d, 36h, 2w."),
    min_redundancy: int | None = typer.Option(None, "--min-redundancy", min=1,
                                              help="Never leave fewer DONE backups per dataset (default 1)."),
    dataset: list[str] | None = typer.Option(None, "--dataset", help="Only this dataset (repeatable)."),
    timezone: str | None = typer.Option(None, "--timezone", help="IANA zone for the periods (default: local)."),
    wait: float = typer.Option(0.0, "--wait", min=0, help="With --apply: seconds to wait for a busy vault."),
    passphrase_file: Path | None = PassFileOpt, json_out: bool = JsonOpt,
) -> None:
    """Plan retention per dataset (which backups to keep, and why); --apply deletes and collects garbage."""
    with handled_errors():
        options = {"keep_last": keep_last, "keep_hourly": keep_hourly, "keep_daily": keep_daily,
                   "keep_weekly": keep_weekly, "keep_monthly": keep_monthly, "keep_yearly": keep_yearly,
                   "keep_within": keep_within, "min_redundancy": min_redundancy, "timezone": timezone}
        policy = _policy({k: v for k, v in options.items() if v is not None})
        load_passphrase(passphrase_file)
        from flows.retention import apply_retention

        result = run_flow(apply_retention, vault=vault_param(vault), policy=policy, dry_run=dry_run,
                          datasets=dataset or None, wait=wait)
        if json_out:
            print_json(_json(result))
        else:
            _print(result)


def _policy(options: dict[str, Any]) -> Any:
    from seawall.retention import make_policy

    if not any(k.startswith("keep_") for k in options):
        raise ConfigError("no retention rule given: this would keep nothing",
                          hint="give at least one --keep-* option, e.g. --keep-daily 7")
    return make_policy(**options)


def _json(result: Any) -> dict:
    from tasks.retention import plan_rows

    return {"vault": result.preview["vault"], "dry_run": result.pruned is None,
            "policy": result.policy.model_dump(mode="json"), "refused": result.plan.refused,
            "backups": plan_rows(result.plan), "gc": result.preview,
            "pruned": result.pruned.model_dump(mode="json") if result.pruned else None}


def _print(result: Any) -> None:
    from tasks.retention import plan_rows

    table = Table("dataset", "backup id", "action", "reasons")
    for row in plan_rows(result.plan):
        colour = "green" if row["action"] == "keep" else "red"
        table.add_row(row["dataset"], row["backup_id"], f"[{colour}]{row['action']}[/]", "; ".join(row["reasons"]))
    console.print(f"policy: {result.policy.describe()}", highlight=False)
    console.print(table)
    if result.plan.refused:
        console.print(f"[yellow]held back:[/] {result.plan.refused}", highlight=False)
    gc = result.preview
    if result.pruned is None:
        console.print(f"dry run: would remove {len(result.plan.remove)} backups and free "
                      f"{human_bytes(gc['bytes_unreferenced'] + gc['wal_bytes'])} ({gc['chunks_unreferenced']} "
                      f"chunks, {len(gc['wal_removable'])} WAL files); run with --apply to do it", highlight=False)
        return
    done = result.pruned.gc
    console.print(f"removed {len(result.pruned.removed)} backups, deleted {done['chunks_deleted']} chunks and "
                  f"{done['wal_deleted']} WAL files, freed {human_bytes(done['bytes_freed'])}", highlight=False)
    for key in result.pruned.locked[:10]:
        console.print(f"[yellow]kept by Object Lock:[/] {key}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `seawall retention` to the app (called from seawall.cli.app.run)."""
    app.command("retention")(retention_cmd)
