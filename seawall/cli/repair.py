"""`seawall repair index`: rebuild the vault's index from its pack headers (seawall.vault.repair).

For an index that `seawall verify` reports as damaged or disagreeing with the packs, or index files
that were lost. Runs under the vault's exclusive lease (waits `--wait` seconds for backups, copies
and prunes to finish; exit 5 when still busy). Exit 0 when every pack's header opened; 3 when some
did not (they are named: their chunks stay unindexed, and `seawall verify` names the backups
that need them).
"""

from __future__ import annotations

from pathlib import Path

import typer

from seawall.cli.common import JsonOpt, PassFileOpt, VaultOpt, open_vault_cli
from seawall.cli.output import console, handled_errors, print_json
from seawall.errors import ExitCode

repair_app = typer.Typer(no_args_is_help=True, help="Repair a vault's index.")


@repair_app.command("index")
def repair_index(vault: str = VaultOpt, passphrase_file: Path | None = PassFileOpt,
                 wait: float = typer.Option(0.0, "--wait", help="Seconds to wait for the exclusive vault lease."),
                 json_out: bool = JsonOpt) -> None:
    """Rebuild the index from the pack headers; old index files are deleted after the new one is written."""
    from seawall.lease import exclusive_lease
    from seawall.vault.repair import rebuild_index

    with handled_errors():
        opened = open_vault_cli(vault, passphrase_file)
        with exclusive_lease(opened, "repair index", wait=wait):
            report = rebuild_index(opened)
    if json_out:
        print_json(report.to_dict())
    else:
        console.print(f"index rebuilt from {report.packs} packs: {report.chunks} chunks "
                      f"({report.entries_before} known before), {report.index_files_written} index file(s) "
                      f"written, {report.index_files_deleted} old one(s) deleted", highlight=False)
        for bad in report.bad_packs:
            console.print(f"[red]DAMAGED[/] pack {bad}", highlight=False)
    if not report.ok:
        raise typer.Exit(ExitCode.INTEGRITY)


def register(app: typer.Typer) -> None:
    app.add_typer(repair_app, name="repair")
