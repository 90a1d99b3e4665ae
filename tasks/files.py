"""Tasks for file-tree backups: preflight, backup, restore. Each is a thin call into seawall/."""

from __future__ import annotations

from seawall.configs.vault import VaultConfig
from seawall.lease import shared_lease
from seawall.manifest import Manifest
from seawall.preflight import CheckResult, require_critical, run_checks
from seawall.progress import listening, reporter
from seawall.sources.delta import check_delta_root, restore_tree_delta
from seawall.sources.files import backup_tree, check_restore_target, check_source, restore_tree, tree_size
from tasks.policy import RETRYABLE
from tasks.runtime import task
from tasks.slots import vault_slot


@task(name="preflight-files", **RETRYABLE)
def preflight_files(path: str, vault: VaultConfig) -> list[CheckResult]:
    """Check the source folder and the vault before anything is written.

    Example:
        ```python
        preflight_files("/srv/data", VaultTarget.load("BLOCK_NAME"))
        ```
    """
    results = run_checks([
        ("source readable", lambda: str(check_source(path)), True),
        ("vault opens", lambda: vault.open_vault().config.vault_id, True),
    ])
    require_critical(results)
    return results


@task(name="backup-files", **RETRYABLE)
def backup_files_task(vault: VaultConfig, path: str, dataset: str, backup_id: str) -> Manifest:
    """Back up a folder incrementally against the dataset's newest DONE backup.

    Idempotent: a retry reuses `backup_id`, already-stored chunks are skipped.

    Example:
        ```python
        backup_files_task(VaultTarget.load("BLOCK_NAME"), "/srv/data", "data", new_backup_id())
        ```
    """
    v = vault.open_vault()
    with vault_slot(), shared_lease(v, f"backup {dataset}"):  # retention's GC waits until we are done
        parent = v.latest_backup(dataset, kind="files")
        # A bar with a total and an ETA needs the bytes up front: a stat-only walk (restic scans the
        # same way), made only when someone draws the bar.
        total = tree_size(path) if listening() else None
        return backup_tree(v, path, dataset, backup_id=backup_id, parent=parent,
                           progress=reporter("backup", total or None))


@task(name="restore-files", **RETRYABLE)
def restore_files_task(vault: VaultConfig, backup_id: str, target: str, delta: bool = False,
                       trust_mtime: bool = False, jobs: int = 3) -> dict:
    """Restore a files backup into an empty folder, or (`delta`) bring an existing one to its state.

    Returns `{"files": files in the backup, "skipped_items": what the target could not keep}` (a device
    node or a trusted.* attribute without root, attributes on a file system without them); with
    `delta` also `"delta"`: the counts of `seawall.sources.delta.DeltaStats` (files written, removed...).
    Idempotent: a plain restore refuses a non-empty target, a delta restore run again only finishes.

    Example:
        ```python
        restore_files_task(VaultTarget.load("BLOCK_NAME"), "20261122T001120Z-a1b2c3", "/tmp/restore")
        ```
    """
    if delta:
        check_delta_root(target)
    else:
        check_restore_target(target)
    v = vault.open_vault()
    manifest = v.require_done(backup_id)
    total = manifest.stats.bytes_total  # file bytes (the streams hold only the tree index)
    skipped: list[str] = []
    progress = reporter("restore", total or None)
    if delta:
        stats = restore_tree_delta(v, manifest, target, workers=jobs, trust_mtime=trust_mtime,
                                   progress=progress, skipped=skipped)
        return {"files": stats.files, "skipped_items": skipped, "delta": stats.as_dict()}
    files = restore_tree(v, manifest, target, progress=progress, workers=jobs, skipped=skipped)
    return {"files": files, "skipped_items": skipped}
