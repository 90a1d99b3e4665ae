"""Tasks for file trees on SSH hosts: preflight, backup, restore to a host. Thin calls into seawall/."""

from __future__ import annotations

from seawall.configs.ssh import SshConfig
from seawall.configs.vault import VaultConfig
from seawall.lease import shared_lease
from seawall.manifest import Manifest
from seawall.preflight import CheckResult, require_critical, run_checks
from seawall.progress import reporter
from seawall.sources.remote import RemoteSession, RemoteSource, backup_remote_tree, check_remote_dir
from seawall.sources.remote_restore import restore_tree_remote
from seawall.ssh import translate_ssh_errors
from tasks.policy import RETRYABLE
from tasks.runtime import task
from tasks.slots import vault_slot


def _source_check(host: SshConfig, path: str) -> str:
    options = host.ssh_options()
    with RemoteSession(options) as session, translate_ssh_errors(f"checking {path} on {session.display}"):
        check_remote_dir(session, path)
        return f"{session.display}:{path}"


@task(name="preflight-remote-files", **RETRYABLE)
def preflight_remote_files(host: SshConfig, path: str, vault: VaultConfig) -> list[CheckResult]:
    """Check that the host accepts us (host key, login), the folder exists, and the vault opens.

    Example:
        ```python
        preflight_remote_files(SshHost.load("WEB1"), "/srv/www", VaultTarget.load("BLOCK_NAME"))
        ```
    """
    results = run_checks([
        ("source reachable", lambda: _source_check(host, path), True),
        ("vault opens", lambda: vault.open_vault().config.vault_id, True),
    ])
    require_critical(results)
    return results


@task(name="backup-remote-files", **RETRYABLE)
def backup_remote_files_task(host: SshConfig, path: str, vault: VaultConfig, dataset: str, backup_id: str,
                             exclude: list[str] | None = None, one_file_system: bool = False) -> Manifest:
    """Back up a folder on an SSH host, incrementally against the dataset's newest DONE backup.

    Idempotent: a retry (after a dropped connection, say) reuses `backup_id`, and chunks the vault
    already holds are not stored again.

    Example:
        ```python
        backup_remote_files_task(SshHost.load("WEB1"), "/srv/www", VaultTarget.load("BLOCK_NAME"),
                                 "files-web1-www", new_backup_id())
        ```
    """
    v = vault.open_vault()
    source = RemoteSource(host.ssh_options(), path, exclude=list(exclude or []), one_file_system=one_file_system)
    with vault_slot(), shared_lease(v, f"backup {dataset}"):  # retention's GC waits until we are done
        parent = v.latest_backup(dataset, kind="files")
        return backup_remote_tree(v, source, dataset, backup_id=backup_id, parent=parent,
                                  progress=reporter("backup"))


@task(name="restore-to-remote", **RETRYABLE)
def restore_to_remote_task(vault: VaultConfig, backup_id: str, host: SshConfig, path: str) -> dict:
    """Restore a files backup into a new or empty folder on an SSH host.

    Returns `{"files": files written, "skipped_items": what the host could not take}`.

    A retry resumes its own unfinished restore (a marker file names the backup); any other
    non-empty target is refused.

    Example:
        ```python
        restore_to_remote_task(VaultTarget.load("BLOCK_NAME"), "20261122T001120Z-a1b2c3",
                               SshHost.load("WEB1"), "/srv/www-restored")
        ```
    """
    v = vault.open_vault()
    manifest = v.require_done(backup_id)
    total = manifest.stats.bytes_total  # file bytes (the streams hold only the tree index)
    skipped: list[str] = []
    with RemoteSession(host.ssh_options()) as session:
        files = restore_tree_remote(v, manifest, session, path, progress=reporter("restore", total or None),
                                    skipped=skipped)
    return {"files": files, "skipped_items": skipped}
