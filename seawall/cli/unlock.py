"""`seawall unlock`: remove the vault's leases (borg/restic break-lock), after a confirmation.

A lease left by a process that died on this host is broken by the next taker at once; one left by
a crashed process on another host (or in another container) cannot be proven dead from here and
would block prunes and backups until it expires. `unlock` lists the leases and removes them.
"""

from __future__ import annotations

import sys

import typer

from seawall.cli.common import JsonOpt, VaultOpt
from seawall.cli.output import console, fail, handled_errors, print_json


def unlock_cmd(vault: str = VaultOpt,
               yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
               json_out: bool = JsonOpt) -> None:
    """Remove every lease on the vault (after a crash on another host); asks first unless --yes."""
    from seawall.lease import break_all, leases_in
    from seawall.stores import open_store
    from seawall.vault import Vault

    with handled_errors():
        store = open_store(vault)
        Vault.read_config(store)  # a vault, not any folder (no key needed)
        held = leases_in(store)
        if not held:
            _report(json_out, store.display_url, [])
            return
        if not yes:
            for record in held:
                console.print(f"lease: {record.describe()}", highlight=False)
            if not sys.stdin.isatty():
                fail("refusing to remove leases without confirmation: rerun with --yes "
                     "(make sure none of these processes still runs)")
            if not typer.confirm(f"remove these {len(held)} lease(s)? Only if none of these processes still runs"):
                fail("nothing removed")
        _report(json_out, store.display_url, break_all(store))


def _report(json_out: bool, url: str, removed: list) -> None:
    if json_out:
        print_json({"vault": url, "removed": [r.__dict__ for r in removed]})
    elif removed:
        for record in removed:
            console.print(f"removed lease: {record.describe()}", highlight=False)
    else:
        console.print(f"no leases on {url}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `seawall unlock` to the app."""
    app.command("unlock")(unlock_cmd)
