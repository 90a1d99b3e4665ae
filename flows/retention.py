"""The retention flow: plan → preview → publish → (unless dry run) prune under the exclusive lease."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from seawall.configs.vault import as_vault_target
from seawall.gc import GcReport
from seawall.retention import DEFAULT_POLICY, RetentionPlan, RetentionPolicy, make_policy
from tasks.retention import (
    PruneResult,
    plan_retention_task,
    preview_gc_task,
    prune_task,
    publish_prune_report,
    publish_retention_plan,
)
from tasks.runtime import flow, label_run

if TYPE_CHECKING:  # block types, resolved by tasks.runtime when the Prefect flow is built
    from blocks.vault import VaultTarget


class RetentionResult(BaseModel):
    """The plan, what GC would free, and (when applied) what was deleted."""

    policy: RetentionPolicy
    plan: RetentionPlan
    preview: dict
    pruned: PruneResult | None = None


def as_policy(policy: RetentionPolicy | dict[str, Any] | None) -> RetentionPolicy:
    """A policy object from a policy, a dict of its fields (deployment parameters) or None (default)."""
    if policy is None:
        return DEFAULT_POLICY
    return policy if isinstance(policy, RetentionPolicy) else make_policy(**policy)


@flow(name="apply-retention", stage="retention", log_prints=True)
def apply_retention(vault: VaultTarget | str, policy: RetentionPolicy | dict[str, Any] | None = None,
                    dry_run: bool = True, datasets: list[str] | None = None,
                    verified_ids: list[str] | None = None, wait: float = 0.0) -> RetentionResult:
    """Apply a retention policy: a dry run by default; `dry_run=False` deletes and collects garbage.

    Example:
        ```python
        from flows.retention import apply_retention
        apply_retention("s3://backups/www?region=eu-west-1", {"keep_daily": 7, "keep_weekly": 4},
                        dry_run=False)
        ```
    """
    target, rules = as_vault_target(vault), as_policy(policy)
    label_run(*(datasets or []))
    plan = plan_retention_task(target, rules, datasets, verified_ids)
    preview: GcReport = preview_gc_task(target, plan)
    publish_retention_plan(plan, preview, rules)
    pruned = None
    if not dry_run:
        pruned = prune_task(target, plan, rules, datasets, verified_ids, wait)
        publish_prune_report(pruned)
    return RetentionResult(policy=rules, plan=plan, preview=preview.to_dict(), pruned=pruned)
