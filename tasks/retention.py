"""Tasks for retention: list backups, plan, preview the space freed, prune under the exclusive lease.

Planning is pure (`seawall.retention`); only `prune` deletes, and it re-plans inside the lease so a
backup that finished after the preview is judged with everything else.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from seawall.configs.vault import VaultConfig
from seawall.gc import GcReport, collect_garbage, delete_manifests
from seawall.lease import exclusive_lease
from seawall.manifest import Manifest, manifest_key
from seawall.retention import RetentionPlan, RetentionPolicy, plan_retention
from seawall.units import human_bytes
from seawall.vault import Vault
from tasks.policy import RETRYABLE
from tasks.runtime import create_markdown_artifact, create_table_artifact, task
from tasks.slots import vault_slot


class PruneResult(BaseModel):
    """What `prune` deleted: manifests, and the GC report."""

    removed: list[str] = Field(default_factory=list, description="Manifest keys deleted.")
    locked: list[str] = Field(default_factory=list, description="Keys kept by S3 Object Lock.")
    gc: dict = Field(default_factory=dict)


def _backups(vault: Vault, datasets: list[str] | None) -> list[Manifest]:
    if not datasets:
        return vault.list_backups()
    return [m for d in datasets for m in vault.list_backups(d)]


def _suspicious(vault: Vault, backups: list[Manifest]) -> dict[str, str]:
    """SUSPICIOUS backups: verdicts stored in the vault plus the detector run again over the manifests."""
    from seawall.readiness.anomaly import suspicious_ids
    from seawall.readiness.evidence import read_anomalies

    return suspicious_ids(backups, read_anomalies(vault))


def _keys(plan: RetentionPlan, ids: list[str]) -> list[str]:
    return [manifest_key(plan.datasets[i], i) for i in ids]


@task(name="plan-retention", **RETRYABLE)
def plan_retention_task(vault: VaultConfig, policy: RetentionPolicy, datasets: list[str] | None = None,
                        verified_ids: list[str] | None = None) -> RetentionPlan:
    """Read the manifests and plan which backups to keep (pure planning, nothing deleted).

    Example:
        ```python
        plan = plan_retention_task(VaultTarget.load("BLOCK_NAME"), RetentionPolicy(keep_daily=7))
        ```
    """
    v = vault.open_vault()
    backups = _backups(v, datasets)
    return plan_retention(backups, policy, datetime.now(UTC), frozenset(verified_ids or ()), _suspicious(v, backups))


@task(name="preview-gc", **RETRYABLE)
def preview_gc_task(vault: VaultConfig, plan: RetentionPlan) -> GcReport:
    """Dry-run GC as if the plan's backups were gone: the chunks and bytes it would free.

    Example:
        ```python
        preview = preview_gc_task(VaultTarget.load("BLOCK_NAME"), plan)
        ```
    """
    return collect_garbage(vault.open_vault(), dry_run=True, exclude=_keys(plan, plan.remove),
                           expect=_keys(plan, list(plan.keep)))


@task(name="prune", **RETRYABLE)
def prune_task(vault: VaultConfig, plan: RetentionPlan, policy: RetentionPolicy,
               datasets: list[str] | None = None, verified_ids: list[str] | None = None,
               wait: float = 0.0) -> PruneResult:
    """Under the exclusive lease: delete the manifests the plan removes, then collect garbage.

    Idempotent: a retry finds the manifests already gone and sweeps what is still unreferenced.
    Only backups both the plan and a fresh plan inside the lease remove are deleted.

    Example:
        ```python
        prune_task(VaultTarget.load("BLOCK_NAME"), plan, policy)
        ```
    """
    v = vault.open_vault()
    with vault_slot(), exclusive_lease(v, "retention", wait=wait) as lease:
        backups = _backups(v, datasets)
        fresh = plan_retention(backups, policy, datetime.now(UTC), frozenset(verified_ids or ()),
                               _suspicious(v, backups))
        ids = sorted(set(plan.remove) & set(fresh.remove))
        lease.check()
        removed, locked = delete_manifests(v, _keys(fresh, ids))
        report = collect_garbage(v, expect=_keys(fresh, list(fresh.keep)), before_delete=lease.check)
    return PruneResult(removed=removed, locked=locked + report.locked, gc=report.to_dict())


def plan_rows(plan: RetentionPlan) -> list[dict]:
    """One row per backup: dataset, id, verdict and reasons (for tables and the CLI)."""
    rows = [{"dataset": plan.datasets[i], "backup_id": i, "action": "keep", "reasons": r}
            for i, r in plan.keep.items()]
    rows += [{"dataset": plan.datasets[i], "backup_id": i, "action": "remove", "reasons": [plan.remove_reasons[i]]}
             for i in plan.remove]
    return sorted(rows, key=lambda r: (r["dataset"], r["backup_id"]), reverse=True)


@task(name="publish-retention-plan")
def publish_retention_plan(plan: RetentionPlan, preview: GcReport, policy: RetentionPolicy) -> None:
    """Publish the plan (every backup with its reasons) and the space it would free.

    Example:
        ```python
        publish_retention_plan(plan, preview, policy)
        ```
    """
    table = [r | {"reasons": "; ".join(r["reasons"])} for r in plan_rows(plan)]
    create_table_artifact(key="retention-plan", table=table or [{"action": "no backups"}],
                          description=f"Retention plan ({policy.describe()})")
    lines = ["# Retention plan", "", f"Policy: {policy.describe()}.", "",
             f"{len(plan.keep)} kept, {len(plan.remove)} to remove; would free "
             f"{human_bytes(preview.bytes_unreferenced + preview.wal_bytes)} "
             f"({preview.chunks_unreferenced} chunks, {len(preview.wal_removable)} WAL files)."]
    if plan.refused:
        lines += ["", f"**Held back:** {plan.refused}"]
    create_markdown_artifact(key="retention-plan-summary", markdown="\n".join(lines))


@task(name="publish-prune-report")
def publish_prune_report(pruned: PruneResult) -> None:
    """Publish what a prune deleted and freed, and what Object Lock kept.

    Example:
        ```python
        publish_prune_report(prune_task(target, plan, policy))
        ```
    """
    gc = pruned.gc
    lines = ["# Retention applied", "",
             f"{len(pruned.removed)} backups removed; {gc.get('chunks_deleted', 0)} chunks and "
             f"{gc.get('wal_deleted', 0)} WAL files deleted, {human_bytes(gc.get('bytes_freed', 0))} freed."]
    if pruned.locked:
        lines += ["", f"{len(pruned.locked)} objects kept by Object Lock, first `{pruned.locked[0]}`."]
    create_markdown_artifact(key="retention-prune-summary", markdown="\n".join(lines))
