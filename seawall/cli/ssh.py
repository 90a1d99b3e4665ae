"""The SSH side of `backup files` and `restore --to`: sources and targets given as `ssh://` URLs.

`seawall backup files ssh://user@host[:port]/path --vault URL [--identity FILE] [--known-hosts FILE]
[--exclude PATTERN ...] [--one-file-system]` and `seawall restore ID --vault URL --to ssh://...`.
The app's `backup files` and `restore` commands call these when the path is an `ssh://` URL.
"""

from __future__ import annotations

from pathlib import Path

import typer

from seawall.cli.common import check_dataset, load_passphrase, model, run_flow, vault_param
from seawall.cli.output import console, handled_errors, print_json, progress_bars
from seawall.errors import ConfigError, ExitCode
from seawall.units import human_bytes, human_seconds

IdentityOpt = typer.Option(None, "--identity", "-i", help="SSH private key file (default: the SSH agent and "
                           "~/.ssh keys; an encrypted key's passphrase comes from SEAWALL_SSH_KEY_PASSPHRASE).")
KnownHostsOpt = typer.Option(None, "--known-hosts", help="Extra known_hosts file (~/.ssh/known_hosts and "
                             "/etc/ssh/ssh_known_hosts are always read; unknown hosts are refused).")
ExcludeOpt = typer.Option(None, "--exclude", "-e", help="gitignore-style pattern to leave out (repeatable).")
OneFsOpt = typer.Option(False, "--one-file-system", "-x", help="Do not cross into other file systems.")


def _host_block(url: str, identity: Path | None, known_hosts: Path | None):
    if known_hosts is not None and not known_hosts.is_file():
        raise ConfigError(f"known_hosts file {known_hosts} does not exist", hint="check --known-hosts")
    return model("ssh").from_url(url, key_path=str(identity.absolute()) if identity else None,
                            known_hosts_path=str(known_hosts.absolute()) if known_hosts else None)


def backup_ssh_cmd(url: str, vault: str, dataset: str | None, identity: Path | None, known_hosts: Path | None,
                   exclude: list[str] | None, one_file_system: bool, passphrase_file: Path | None,
                   json_out: bool) -> None:
    """Back up a folder on an SSH host; exits 4 (partial) when some items were skipped."""
    with handled_errors():
        load_passphrase(passphrase_file)
        check_dataset(dataset)
        from flows.remote import backup_remote_files
        from seawall.cli.app import manifest_row
        from seawall.ssh import parse_ssh_url

        path = parse_ssh_url(url).path
        host = _host_block(url, identity, known_hosts)
        with progress_bars(not json_out):
            manifest = run_flow(backup_remote_files, host=host, vault=vault_param(vault), path=path, dataset=dataset,
                                exclude=list(exclude or []), one_file_system=one_file_system)
        if json_out:
            print_json(manifest_row(manifest) | {"skipped_items": manifest.stats.skipped,
                                                 "not_kept": manifest.source.get("not_kept", []),
                                                 "bytes_read": manifest.stats.bytes_read,
                                                 "source": manifest.source.get("url")})
        else:
            s = manifest.stats
            console.print(f"backup {manifest.backup_id} of {manifest.dataset} ({host.display()}:{path}): "
                          f"{s.files} files, {human_bytes(s.bytes_total)}, {human_bytes(s.bytes_read)} read, "
                          f"{human_bytes(s.stored_bytes_new)} new in the vault, {human_seconds(manifest.duration_s)}")
            for item in s.skipped:
                console.print(f"[yellow]skipped:[/] {item}", highlight=False)
            for item in manifest.source.get("not_kept", []):
                console.print(f"[yellow]not kept:[/] {item}", highlight=False)
    if manifest.stats.skipped:
        raise typer.Exit(ExitCode.PARTIAL)


def restore_ssh(backup_id: str, vault: str, url: str, identity: Path | None, known_hosts: Path | None,
                json_out: bool) -> None:
    """Restore a files backup into a new or empty folder on an SSH host."""
    with handled_errors():
        from flows.remote import restore_to_remote
        from seawall.ssh import parse_ssh_url

        parsed = parse_ssh_url(url)
        host = _host_block(url, identity, known_hosts)
        with progress_bars(not json_out):
            done = run_flow(restore_to_remote, backup_id=backup_id, vault=vault_param(vault), host=host,
                            path=parsed.path)
        if json_out:
            print_json({"backup_id": backup_id, "target": parsed.display()} | done)
        else:
            console.print(f"restored {done['files']} files of {backup_id} into {parsed.display()}")
            for item in done["skipped_items"]:
                console.print(f"[yellow]not restored:[/] {item}", highlight=False)
    if done["skipped_items"]:
        raise typer.Exit(ExitCode.PARTIAL)
