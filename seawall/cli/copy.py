"""`seawall copy`: copy backups (and the WAL archive) into a vault in another region.

The destination has its own passphrase (`--dest-passphrase-file`, else SEAWALL_DEST_PASSPHRASE,
else the source's) and, for S3, its own credentials through `?profile=` in its URL. A destination
that holds no vault yet is created from the source with `--init-dest` (same master key, wrapped
by the destination's passphrase; an S3 bucket is created, with Object Lock when asked).
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from seawall.cli.common import JsonOpt, PassFileOpt, load_passphrase, model, run_flow, vault_param
from seawall.cli.output import console, handled_errors, print_json, progress_bars
from seawall.errors import ConfigError, ExitCode
from seawall.units import human_bytes, human_seconds

DEST_PASSPHRASE_ENV = "SEAWALL_DEST_PASSPHRASE"


def dest_passphrase(path: Path | None) -> str | None:
    """The destination passphrase from --dest-passphrase-file or SEAWALL_DEST_PASSPHRASE (None: the source's)."""
    if path is None:
        return os.environ.get(DEST_PASSPHRASE_ENV) or None
    try:
        return path.read_text().rstrip("\r\n") or None
    except OSError as exc:
        raise ConfigError(f"cannot read destination passphrase file {path}: {exc.strerror}") from None


def parse_backups(text: str) -> str | list[str]:
    return text if text in ("all", "latest") else [b for b in text.split(",") if b.strip()]


def copy_cmd(
    source: str = typer.Option(..., "--from", help="Source vault URL."),
    dest: str = typer.Option(..., "--to", help="Destination vault URL (another bucket, region or folder)."),
    dataset: list[str] | None = typer.Option(None, "--dataset", help="Only this dataset (repeatable)."),
    backups: str = typer.Option("all", "--backups", help="all, latest (per dataset) or ID,ID,..."),
    no_wal: bool = typer.Option(False, "--no-wal", help="Do not copy the WAL archive."),
    bwlimit: int | None = typer.Option(None, "--bwlimit", min=1, help="Upload limit in bytes per second."),
    workers: int = typer.Option(8, "--workers", min=1, max=64, help="Objects transferred in parallel."),
    lock_mode: str | None = typer.Option(None, "--object-lock-mode", help="governance or compliance (S3 only)."),
    lock_days: int | None = typer.Option(None, "--object-lock-days", min=1, help="Object Lock retention in days."),
    init_dest: bool = typer.Option(False, "--init-dest", help="Create the destination vault from the source "
                                   "(same master key, the destination's passphrase) if it holds none."),
    passphrase_file: Path | None = PassFileOpt,
    dest_passphrase_file: Path | None = typer.Option(None, "--dest-passphrase-file", help="Destination passphrase "
                                                     "(default: SEAWALL_DEST_PASSPHRASE, else the source's)."),
    json_out: bool = JsonOpt,
) -> None:
    """Copy the backups the destination lacks, verified there before each manifest is written."""
    from seawall.copy import CopyFailed, LockSpec

    with handled_errors():
        load_passphrase(passphrase_file)
        LockSpec.parse(lock_mode, lock_days)  # bad lock options fail before Prefect starts
        from pydantic import SecretStr

        from flows.cross_region_copy import cross_region_copy

        secret = dest_passphrase(dest_passphrase_file)
        target = model("vault")(url=dest, passphrase=SecretStr(secret) if secret else None)
        params = dict(source_vault=vault_param(source), dest_vault=target, datasets=dataset or None,
                      backups=parse_backups(backups), include_wal=not no_wal, init_dest=init_dest,
                      workers=workers, bwlimit=bwlimit, object_lock_mode=lock_mode, object_lock_days=lock_days)
        try:
            with progress_bars(not json_out):
                report = run_flow(cross_region_copy, **params)
        except CopyFailed as exc:
            _show(exc.report, json_out)
            if json_out:
                raise typer.Exit(ExitCode.INTEGRITY) from None
            raise
        _show(report, json_out)


def _show(report, json_out: bool) -> None:
    if json_out:
        print_json(report.to_dict())
        return
    s = report.stats
    for b in report.backups:
        colour = {"copied": "green", "present": "dim", "failed": "red"}[b.status]
        line = f"[{colour}]{b.status}[/] {b.dataset}/{b.backup_id}"
        console.print(line + (f": {b.error}" if b.error else f" ({human_bytes(b.bytes_copied)})"), highlight=False)
    if report.wal is not None:
        console.print(f"WAL: {report.wal.copied} copied, {report.wal.present} already there", highlight=False)
    console.print(f"{human_bytes(s['bytes_copied'])} in {s['objects_copied']} objects, "
                  f"{report.objects_skipped} skipped, {human_bytes(s['throughput_bps'])}/s", highlight=False)
    for row in report.lag:
        lag = human_seconds(row["lag_s"]) if row["lag_s"] is not None else "nothing copied yet"
        console.print(f"lag {row['dataset']}: {lag}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `seawall copy` to the application."""
    app.command("copy")(copy_cmd)
