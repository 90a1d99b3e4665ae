"""Tasks of the cross-region copy flow: thin, retryable, idempotent wrappers over seawall.copy.

Every task opens its vaults itself (a `Vault` holds the unwrapped key and never crosses a task
boundary). Re-running any of them is safe: objects are content-addressed or written whole, and a
destination manifest is only written after its backup's objects are verified there. A retried
`copy_backups_task` plans again first, so it does not resend what its failed attempt copied.
"""

from __future__ import annotations

from typing import Any

from seawall.configs.vault import VaultConfig
from seawall.copy import (
    BackupCopy,
    CopyPlan,
    CopyReport,
    CopySettings,
    LockSpec,
    Selection,
    TransferStats,
    WalCopy,
    copy_backups,
    copy_wal,
    extend_locks,
    plan_copy,
    prepare_destination,
)
from seawall.copy.lock import apply_lock, reused_keys
from seawall.errors import ConfigError, VaultNotInitialised
from seawall.lease import shared_lease
from seawall.progress import reporter
from seawall.stores import ObjectStore, open_store
from seawall.units import human_bytes, human_seconds
from seawall.vault import Vault
from tasks.policy import RETRYABLE
from tasks.runtime import NO_CACHE, create_markdown_artifact, create_table_artifact, run_count, task
from tasks.slots import vault_slot

_TASK = dict(RETRYABLE, cache_policy=NO_CACHE)  # plans hold every chunk id: never hash them as inputs


def dest_store(dest: VaultConfig, lock: LockSpec | None, *, create: bool = False, source_url: str = "SRC",
               ) -> ObjectStore:
    """The destination's store, writing with Object Lock retention when `lock` is given."""
    if lock is not None and not dest.url.startswith("s3://"):
        raise ConfigError(f"object lock needs an s3:// destination, not {dest.display()}",
                          hint="drop --object-lock-* or copy into an S3 bucket with Object Lock")
    # VaultConfig.get_store() takes no store options yet, so its credentials are passed on here.
    options: dict[str, Any] = dest._store_options() | (lock.store_options() if lock else {})
    try:
        store = open_store(dest.store_url(), create=create, **options)
    except ConfigError as exc:
        if create or "does not exist" not in exc.message:
            raise
        raise VaultNotInitialised(exc.message, hint="create the copy destination from the source: "
                                  f"seawall copy --from {source_url} --to {dest.display()} --init-dest") from None
    if lock is not None:
        apply_lock(store, lock)
    return store


def open_pair(source: VaultConfig, dest: VaultConfig, lock: LockSpec | None = None, *,
              init: bool = False) -> tuple[Vault, Vault]:
    """The unlocked source and destination vaults, checked to fit each other."""
    src = source.open_vault()
    passphrase = dest.get_passphrase()
    store = dest_store(dest, lock, create=init, source_url=source.display())
    return src, prepare_destination(src, store, passphrase, init=init, source_url=source.display())


@task(name="prepare-copy-destination", **_TASK)
def prepare_destination_task(source: VaultConfig, dest: VaultConfig, init_dest: bool = False,
                             lock: LockSpec | None = None) -> str:
    """Check (or with `init_dest`, create) the destination; returns its vault id.

    Example:
        ```python
        prepare_destination_task(VaultTarget.load("prod"), VaultTarget.load("dr"), init_dest=True)
        ```
    """
    _, dst = open_pair(source, dest, lock, init=init_dest)
    return dst.config.vault_id


@task(name="plan-copy", **_TASK)
def plan_copy_task(source: VaultConfig, dest: VaultConfig, datasets: list[str] | None = None,
                   backups: Selection = "all", include_wal: bool = True) -> CopyPlan:
    """List both sides once and work out what the destination lacks.

    Example:
        ```python
        plan = plan_copy_task(VaultTarget.load("prod"), VaultTarget.load("dr"), backups="latest")
        ```
    """
    src, dst = open_pair(source, dest)
    return plan_copy(src, dst, datasets=datasets, backups=backups, include_wal=include_wal)


@task(name="copy-wal", **_TASK)
def copy_wal_task(source: VaultConfig, dest: VaultConfig, plan: CopyPlan, settings: CopySettings,
                  lock: LockSpec | None = None) -> tuple[WalCopy, dict]:
    """Copy the WAL objects the destination lacks (cluster binding first); returns (result, stats).

    Example:
        ```python
        wal, stats = copy_wal_task(src, dst, plan, CopySettings(workers=8))
        ```
    """
    src, dst = open_pair(source, dest, lock)
    stats = TransferStats()
    with vault_slot(), shared_lease(dst, "copy WAL"):
        result = copy_wal(src, dst, plan, settings, stats, reporter("copy WAL", plan.bytes_to_copy))
    return result, stats.to_dict()


@task(name="copy-backups", **_TASK)
def copy_backups_task(source: VaultConfig, dest: VaultConfig, plan: CopyPlan, settings: CopySettings,
                      wal: WalCopy | None = None, lock: LockSpec | None = None) -> tuple[list[BackupCopy], dict]:
    """Copy the planned backups: chunks, verification at the destination, then each manifest.

    Example:
        ```python
        results, stats = copy_backups_task(src, dst, plan, CopySettings(bwlimit=50 << 20))
        ```
    """
    src, dst = open_pair(source, dest, lock)
    if run_count() > 1:  # a retry: what the failed attempt copied is no longer missing
        plan = plan_copy(src, dst, backups=[i.backup_id for i in plan.items],
                         include_wal=plan.include_wal) if plan.items else plan
    stats = TransferStats()
    # Both sides' GC waits: the source's must not sweep chunks we are reading, nor the destination's ours.
    with vault_slot(), shared_lease(src, "copy backups (source)"), shared_lease(dst, "copy backups"):
        results = copy_backups(src, dst, plan, settings, wal, stats, reporter("copy backups", plan.bytes_to_copy))
    return results, stats.to_dict()


@task(name="refresh-object-locks", **_TASK)
def refresh_locks_task(dest: VaultConfig, plan: CopyPlan, results: list[BackupCopy],
                       lock: LockSpec) -> dict:
    """Extend the retention of older chunks the newly copied backups reuse.

    Example:
        ```python
        refresh_locks_task(VaultTarget.load("dr"), plan, results, LockSpec("COMPLIANCE", 30))
        ```
    """
    store = dest_store(dest, lock)
    vault = Vault.open(store, dest.get_passphrase())
    return extend_locks(vault, lock, reused_keys(plan, results, vault)).to_dict()


@task(name="extend-object-locks", **_TASK)
def extend_locks_task(dest: VaultConfig, lock: LockSpec, extend: bool = True) -> dict:
    """Check (and extend) the retention of everything the destination's kept backups reference.

    Example:
        ```python
        extend_locks_task(VaultTarget.load("dr"), LockSpec("COMPLIANCE", 30))
        ```
    """
    vault = Vault.open(dest_store(dest, lock), dest.get_passphrase())
    return extend_locks(vault, lock, extend=extend).to_dict()


@task(name="publish-copy-report")
def publish_copy_report(report: CopyReport) -> None:
    """Publish bytes copied, objects skipped, throughput, per-backup outcome and replication lag.

    Example:
        ```python
        publish_copy_report(report)
        ```
    """
    s = report.stats
    rows = [{"metric": "bytes copied", "value": human_bytes(s["bytes_copied"])},
            {"metric": "objects copied", "value": s["objects_copied"]},
            {"metric": "objects skipped (already there)", "value": report.objects_skipped},
            {"metric": "throughput", "value": f"{human_bytes(s['throughput_bps'])}/s"},
            {"metric": "transfer seconds", "value": s["seconds"]},
            {"metric": "retries", "value": s["retries"]},
            {"metric": "backups copied / present / failed", "value": " / ".join(
                str(sum(b.status == k for b in report.backups)) for k in ("copied", "present", "failed"))}]
    create_table_artifact(key="copy-summary", table=rows, description=f"Copy {report.source} → {report.dest}")
    lag = [{"dataset": r["dataset"], "lag": human_seconds(r["lag_s"]) if r["lag_s"] is not None else "no copy",
            "newest at source": r["source_newest"], "newest at destination": r["dest_newest"]} for r in report.lag]
    create_table_artifact(key="copy-replication-lag", table=lag or [{"dataset": "none"}],
                          description="Age of the newest backup at the destination versus the source")
    lines = [f"# Cross-region copy: {'OK' if report.ok else 'FAILED'}", ""]
    lines += [f"- {problem}" for problem in report.failures[:50]]
    create_markdown_artifact(key="copy-problems", markdown="\n".join(lines))
