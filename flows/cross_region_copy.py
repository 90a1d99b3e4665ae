"""The cross-region copy flow: every backup offsite, verified, immutable, resumable.

    prepare destination → plan (one listing per side) → copy WAL → copy backups
        (chunks verified at both ends, then each manifest) → refresh object locks → report
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deployments.events import emit_completed
from seawall.configs.vault import as_vault_target
from seawall.copy import CopyReport, CopySettings, LockSpec, Selection, build_report, raise_for_failures
from tasks.copy import (
    copy_backups_task,
    copy_wal_task,
    plan_copy_task,
    prepare_destination_task,
    publish_copy_report,
    refresh_locks_task,
)
from tasks.runtime import flow, label_run

if TYPE_CHECKING:  # block types, resolved by tasks.runtime when the Prefect flow is built
    from blocks.vault import VaultTarget


@flow(name="cross-region-copy", stage="copy", log_prints=True)
def cross_region_copy(source_vault: VaultTarget | str, dest_vault: VaultTarget | str,
                      datasets: list[str] | None = None, backups: Selection = "all", include_wal: bool = True,
                      init_dest: bool = False, workers: int = 8, bwlimit: int | None = None,
                      object_lock_mode: str | None = None, object_lock_days: int | None = None) -> CopyReport:
    """Copy the backups (and WAL) the destination vault lacks; fails if any backup could not be copied.

    Args:
        source_vault: The vault to copy from (block or URL; passphrase from the block or SEAWALL_PASSPHRASE).
        dest_vault: The destination vault in another region (its own passphrase and credentials).
        datasets: Only these datasets (None: all).
        backups: "all", "latest" (per dataset) or a list of backup ids.
        include_wal: Copy the WAL archive too (physical PostgreSQL backups need it to restore).
        init_dest: Create the destination from the source if it holds no vault yet.
        workers: Objects transferred in parallel.
        bwlimit: Upload limit in bytes per second (None: unlimited).
        object_lock_mode: "governance" or "compliance" to lock every object written (S3 only).
        object_lock_days: Retention in days for the object lock.

    Example:
        ```python
        from flows.cross_region_copy import cross_region_copy
        cross_region_copy("s3://prod/pg?region=eu-west-1", VaultTarget.load("dr-us-east-2"), backups="latest")
        ```
    """
    source, dest = as_vault_target(source_vault), as_vault_target(dest_vault)
    lock = LockSpec.parse(object_lock_mode, object_lock_days)
    settings = CopySettings(workers=workers, bwlimit=bwlimit)
    label_run(*(datasets or []))
    prepare_destination_task(source, dest, init_dest, lock)
    plan = plan_copy_task(source, dest, datasets, backups, include_wal)
    wal, wal_stats = copy_wal_task(source, dest, plan, settings, lock) if include_wal else (None, {})
    results, copy_stats = copy_backups_task(source, dest, plan, settings, wal, lock)
    locks = refresh_locks_task(dest, plan, results, lock) if lock else None
    report = build_report(plan, results, wal, [wal_stats, copy_stats], locks)
    publish_copy_report(report)
    raise_for_failures(report)
    emit_completed("copy", report, dest.display())
    return report
