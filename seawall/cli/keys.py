"""`seawall key list|add|remove|rotate`: the vault's key wrappers (passphrase or AWS KMS)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.table import Table

from seawall.cli.common import JsonOpt, PassFileOpt, VaultOpt, load_passphrase, open_vault_cli
from seawall.cli.output import console, fail, handled_errors, print_json

NEW_PASSPHRASE_ENV = "SEAWALL_NEW_PASSPHRASE"

key_app = typer.Typer(no_args_is_help=True, help="List, add, remove and rotate the vault's key wrappers.")
KmsKeyOpt = typer.Option(None, "--kms-key", help="AWS KMS key: its ARN, or a key id / alias in --kms-region.")
KmsRegionOpt = typer.Option(None, "--kms-region", help="Region of a --kms-key that is no ARN "
                            "(default: the vault's region, else AWS_DEFAULT_REGION).")
NewPassOpt = typer.Option(None, "--new-passphrase-file", help="The new passphrase, from this file "
                          f"(default: the {NEW_PASSPHRASE_ENV} environment variable).")


def register(app: typer.Typer) -> None:
    app.add_typer(key_app, name="key")


def _new_passphrase(path: Path | None) -> str | None:
    if path is None:
        return os.environ.get(NEW_PASSPHRASE_ENV) or None
    try:
        return path.read_text().rstrip("\r\n") or None
    except OSError as exc:
        fail(f"cannot read passphrase file {path}: {exc.strerror}")


def _show(verb: str, vault_url: str, wrapper: dict) -> None:
    where = f" ({wrapper['key_id']})" if wrapper.get("key_id") else ""
    console.print(f"{verb} {wrapper['kind']} key wrapper {wrapper['id']}{where} in {vault_url}", highlight=False)


@key_app.command("list")
def list_cmd(vault: str = VaultOpt, passphrase_file: Path | None = PassFileOpt, json_out: bool = JsonOpt) -> None:
    """Every key wrapper with its kind, KMS key id and region, and whether it unlocks the vault now."""
    from seawall.wrappers import check_wrappers

    with handled_errors():
        v = open_vault_cli(vault, passphrase_file)
        checks = check_wrappers(v, load_passphrase(passphrase_file))
        if json_out:
            print_json({"vault": v.url, "unlocked_by": v.unlocked_by, "wrappers": [c.to_dict() for c in checks]})
            return
        table = Table("id", "kind", "KMS key", "created", "usable", "detail")
        for c in checks:
            mark = {True: "[green]yes[/]", False: "[red]no[/]", None: "[yellow]untested[/]"}[c.usable]
            table.add_row(c.id + (" *" if c.id == v.unlocked_by else ""), c.kind, c.key_id or "",
                          (c.created or "")[:19], mark, c.detail)
        console.print(table)


@key_app.command("add")
def add_cmd(vault: str = VaultOpt, kms_key: str | None = KmsKeyOpt, kms_region: str | None = KmsRegionOpt,
            new_passphrase_file: Path | None = NewPassOpt, passphrase_file: Path | None = PassFileOpt,
            json_out: bool = JsonOpt) -> None:
    """Add a wrapper: a KMS key (--kms-key) or another passphrase (--new-passphrase-file)."""
    from seawall import wrappers

    with handled_errors():
        new_passphrase = _new_passphrase(new_passphrase_file)
        if (kms_key is None) == (new_passphrase is None):
            fail(f"give exactly one of --kms-key KEY or a new passphrase (--new-passphrase-file, {NEW_PASSPHRASE_ENV})")
        v = open_vault_cli(vault, passphrase_file)
        added = (wrappers.add_kms(v, kms_key, kms_region) if kms_key
                 else wrappers.add_passphrase(v, new_passphrase))
        if json_out:
            print_json({"vault": v.url, "added": added})
        else:
            _show("added", v.url, added)


@key_app.command("rotate")
def rotate_cmd(wrapper_id: str = typer.Argument(..., help="The wrapper to replace (see `seawall key list`)."),
               vault: str = VaultOpt, kms_key: str | None = typer.Option(
                   None, "--kms-key", help="KMS wrappers: re-wrap under this key (default: the same key)."),
               new_passphrase_file: Path | None = NewPassOpt, passphrase_file: Path | None = PassFileOpt,
               json_out: bool = JsonOpt) -> None:
    """Re-wrap the same master key in a new wrapper, then delete the old one (data is not re-encrypted)."""
    from seawall import wrappers

    with handled_errors():
        v = open_vault_cli(vault, passphrase_file)
        added = wrappers.rotate(v, wrapper_id, new_passphrase=_new_passphrase(new_passphrase_file), kms_key=kms_key)
        if json_out:
            print_json({"vault": v.url, "added": added, "removed": wrapper_id})
        else:
            _show(f"rotated {wrapper_id} →", v.url, added)


@key_app.command("remove")
def remove_cmd(wrapper_id: str = typer.Argument(..., help="The wrapper to delete (see `seawall key list`)."),
               vault: str = VaultOpt,
               yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
               passphrase_file: Path | None = PassFileOpt, json_out: bool = JsonOpt) -> None:
    """Delete a wrapper; refused when no other wrapper is proven to unlock the vault."""
    from seawall import wrappers

    with handled_errors():
        v = open_vault_cli(vault, passphrase_file)
        record = wrappers.find(v, wrapper_id)
        if not yes:
            if not sys.stdin.isatty():
                fail(f"removing key wrapper {wrapper_id} needs confirmation: pass --yes")
            typer.confirm(f"Remove {record['kind']} key wrapper {wrapper_id} from {v.url}?", abort=True)
        wrappers.remove(v, wrapper_id, load_passphrase(passphrase_file))
        if json_out:
            print_json({"vault": v.url, "removed": wrapper_id})
        else:
            console.print(f"removed {record['kind']} key wrapper {wrapper_id} from {v.url}", highlight=False)
