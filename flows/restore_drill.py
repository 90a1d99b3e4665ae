"""The restore drill (no standby): the newest backup in the DR vault, restored at a random point in
its recoverable window into a new cluster, checked, and timed.

plan (newest DONE backup, random point in its window) → `restore-verification` as a subflow
(scratch cluster, restore, every check, teardown, ledger record) → drill record
`drills/<drill-id>/report` in the vault + artifact → fail the run unless PASSED.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from flows.restore_verification import verify_restore
from seawall.checks.plan import choose_point
from seawall.checks.window import recoverable_window
from seawall.configs.vault import as_vault_target
from seawall.drill.state import (
    DrillFailed,
    DrillReport,
    Measurements,
    ObjectiveMissed,
    StepRecord,
    VaultStateStore,
    new_drill_id,
    save_report,
)
from seawall.errors import BackupNotFound
from seawall.ledger import VerificationFailed, VerificationReport
from seawall.manifest import BackupStatus
from tasks.policy import RETRYABLE
from tasks.report import artifact_key
from tasks.runtime import NO_CACHE, create_markdown_artifact, flow, label_run, task

if TYPE_CHECKING:  # block types, resolved by tasks.runtime when the Prefect flow is built
    from blocks.vault import VaultTarget


@task(name="plan-restore-drill", **RETRYABLE, cache_policy=NO_CACHE)
def plan_restore_drill(vault: VaultTarget, dataset: str, seed: int | None) -> tuple[str, datetime | None]:
    """The newest DONE backup of `dataset`, and (physical) a random point in its recoverable window.

    Example:
        ```python
        backup_id, when = plan_restore_drill(VaultTarget.load("DR_VAULT"), "pg-app", None)
        ```
    """
    v = vault.open_vault()
    done = v.list_backups(dataset, status=BackupStatus.DONE)
    if not done:
        raise BackupNotFound(f"no DONE backup of {dataset} in {vault.display()}", hint="copy one to the DR vault")
    newest = done[-1]
    if newest.kind != "postgres-physical":
        return newest.backup_id, None
    return newest.backup_id, choose_point(recoverable_window(v, newest), random.Random(seed))


@task(name="record-restore-drill", **RETRYABLE, cache_policy=NO_CACHE)
def record_restore_drill(vault: VaultTarget, report: DrillReport) -> str:
    """Store the drill report in the vault and publish it as an artifact.

    Example:
        ```python
        record_restore_drill(vault, report)
        ```
    """
    key = save_report(VaultStateStore(vault.open_vault()), report)
    m = report.measurements
    create_markdown_artifact(key=artifact_key("restore-drill", report.drill_id), markdown=(
        f"# Restore drill {report.drill_id}: **{report.status}**\n\nRTO {m.rto_s} s (objective "
        f"{report.rto_objective_s} s); restore wall time {m.rto_writable_s} s\n\n" + "\n".join(
            f"- {n}" for n in report.notes)))
    return key


@flow(name="restore-drill", stage="drill", log_prints=True)
def restore_drill(vault: VaultTarget | str, dataset: str, rto_seconds: float | None = 3600,
                  seed: int | None = None, scratch_port: int | None = None) -> DrillReport:
    """Restore the newest backup at a random point in time into a new cluster; measure RTO.

    Args:
        vault: the DR vault (block or URL; passphrase from SEAWALL_PASSPHRASE).
        dataset: the dataset to restore.
        rto_seconds: the objective for start → restored and verified.
        seed: reproducible random point.
        scratch_port: port of the new cluster (default: a free one).

    Returns:
        The PASSED report; otherwise raises DrillFailed / ObjectiveMissed (with `.report`).

    Example:
        ```python
        from flows.restore_drill import restore_drill
        restore_drill("s3://dr-backups/pg?region=us-east-2", "pg-app")
        ```
    """
    target = as_vault_target(vault)
    label_run(dataset)
    started = datetime.now(UTC)
    backup_id, when = plan_restore_drill(target, dataset, seed)
    error, verification = None, None
    try:
        # the subflow gets the parameter as given (block or URL): in Prefect mode its schema takes no VaultConfig
        verification = verify_restore(vault, dataset, backup=backup_id, target_time=when, scratch_port=scratch_port)
    except VerificationFailed as exc:
        error, verification = exc.message, exc.report
    report = build_report(dataset, backup_id, when, started, verification, error, rto_seconds)
    record_restore_drill(target, report)
    return verdict(report)


def build_report(dataset: str, backup_id: str, when: datetime | None, started: datetime,
                 v: VerificationReport | None, error: str | None, rto_objective: float | None) -> DrillReport:
    finished = datetime.now(UTC)
    rto = v.rto_verified_s if v else None
    met = None if rto is None or rto_objective is None else rto <= rto_objective
    status = "FAILED" if error or v is None or v.status != "VERIFIED" else ("PASSED" if met is not False
                                                                            else "OBJECTIVE_MISSED")
    step = StepRecord(name="restore-verification", started_at=started, finished_at=finished, ok=error is None,
                      seconds=round((finished - started).total_seconds(), 3), detail=error or "VERIFIED")
    return DrillReport(drill_id=new_drill_id(started), kind="restore", primary=dataset, standby=backup_id,
                       started_at=started, finished_at=finished, steps=[step],
                       checks=[c.model_dump(mode="json") for c in (v.checks if v else [])],
                       measurements=Measurements(rto_s=rto, rto_writable_s=v.rto_restore_s if v else None,
                                                 rpo_s=v.rpo_s if v else None),
                       rto_objective_s=rto_objective, rto_met=met, status=status, error=error,
                       notes=[f"backup {backup_id} restored to {when.isoformat() if when else 'its end'}",
                              *([f"ledger verification {v.verification_id}"] if v else [])])


def verdict(report: DrillReport) -> DrillReport:
    m = report.measurements
    if report.status == "PASSED":
        print(f"restore drill {report.drill_id} PASSED: RTO {m.rto_s}s (restore {m.rto_writable_s}s)")
        return report
    if report.status == "OBJECTIVE_MISSED":
        raise ObjectiveMissed(f"restore drill {report.drill_id}: RTO {m.rto_s}s missed the objective "
                              f"{report.rto_objective_s}s", report=report)
    raise DrillFailed(f"restore drill {report.drill_id} FAILED: {report.error}", report=report)
