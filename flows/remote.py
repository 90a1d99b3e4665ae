"""Flows for file trees on SSH hosts: `backup_remote_files` and `restore_to_remote`.

(Restoring a remote host's backup to a local folder is the ordinary `flows.restore.restore_files`:
a remote backup is a `files` backup like any other.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flows.finish import finish_backup
from seawall.configs.ssh import as_ssh_host
from seawall.configs.vault import as_vault_target
from seawall.errors import ConfigError
from seawall.manifest import Manifest, new_backup_id
from seawall.naming import dataset_for_remote
from seawall.ssh import is_ssh_url, parse_ssh_url
from tasks.remote_files import backup_remote_files_task, preflight_remote_files, restore_to_remote_task
from tasks.runtime import flow, label_run

if TYPE_CHECKING:  # block types, resolved by tasks.runtime when the Prefect flow is built
    from blocks.ssh import SshHost
    from blocks.vault import VaultTarget


def _host_and_path(host: SshHost | str, path: str | None) -> tuple[SshHost, str]:
    """A block and a path, from a block + path or from an `ssh://user@host[:port]/path` URL."""
    if isinstance(host, str) and is_ssh_url(host):
        path = path or parse_ssh_url(host).path
    if not path or not path.startswith("/"):
        raise ConfigError("the remote path must be absolute", hint="e.g. ssh://user@host/srv/www")
    return as_ssh_host(host), path.rstrip("/") or "/"


def default_remote_dataset(host: str, path: str) -> str:
    """`web1`, `/srv/www` → `web1-www` (seawall/naming.py holds the rule)."""
    return dataset_for_remote(host, path)


@flow(name="backup-remote-files", stage="backup", log_prints=True)
def backup_remote_files(host: SshHost | str, vault: VaultTarget | str, path: str | None = None,
                        dataset: str | None = None, exclude: list[str] | None = None,
                        one_file_system: bool = False) -> Manifest:
    """Back up a folder on an SSH host into a vault, incrementally; returns the DONE manifest.

    Example:
        ```python
        from flows.remote import backup_remote_files
        from blocks.ssh import SshHost

        backup_remote_files(SshHost.load("WEB1"), "s3://backups/web?region=eu-west-1", path="/srv/www",
                            exclude=["*.log", "cache/"])
        ```
    """
    ssh_host, path = _host_and_path(host, path)
    target = as_vault_target(vault)
    dataset = dataset or default_remote_dataset(ssh_host.host, path)
    label_run(dataset)
    preflight_remote_files(ssh_host, path, target)
    manifest = backup_remote_files_task(ssh_host, path, target, dataset, new_backup_id(), exclude, one_file_system)
    return finish_backup(manifest, target)


@flow(name="restore-to-remote", stage="restore", log_prints=True)
def restore_to_remote(backup_id: str, vault: VaultTarget | str, host: SshHost | str,
                      path: str | None = None) -> dict:
    """Restore a files backup into a new or empty folder on an SSH host; returns
    `{"files": N, "skipped_items": [...]}` (what the host could not take).

    Example:
        ```python
        from flows.remote import restore_to_remote

        restore_to_remote("20261122T001120Z-a1b2c3", "file:///backups/vault",
                          "ssh://root@web2/srv/www-restored")
        ```
    """
    ssh_host, path = _host_and_path(host, path)
    return restore_to_remote_task(as_vault_target(vault), backup_id, ssh_host, path)
