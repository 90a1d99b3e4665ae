"""Restore verification: restore a backup into a scratch target, check the data, measure RTO and RPO.

plan → provision scratch → restore → [before_checks] → checks (one task each, in parallel) + RPO →
teardown (always) → report into the vault ledger + Prefect artifacts → fail the run unless VERIFIED.

A failed check or restore fails the flow run only after every other check ran, the scratch target
was removed and the FAILED report was recorded, so Prefect's alerting sees it with the evidence.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from deployments.events import emit_completed
from seawall.checks import CheckResult, ChecksFailed, clip, summary_line
from seawall.checks.plan import RestorePlan
from seawall.checks.registry import CheckTarget, check_names
from seawall.checks.restore import Restored, Rpo
from seawall.checks.scratch import Scratch
from seawall.configs.postgres import as_postgres_source
from seawall.configs.vault import as_vault_target
from seawall.errors import SeawallError
from seawall.ledger import VerificationFailed, VerificationReport
from seawall.manifest import Manifest
from tasks.restore import retrieve_archived
from tasks.runtime import flow, label_run
from tasks.verification import (
    before_checks_task,
    check_task,
    measure_rpo_task,
    plan_verification,
    provision_scratch,
    record_verification,
    restore_to_scratch,
    teardown_scratch,
    write_heartbeat,
)

if TYPE_CHECKING:  # block types, resolved by tasks.runtime when the Prefect flow is built
    from blocks.postgres import PostgresSource
    from blocks.vault import VaultTarget


@dataclass
class Outcome:
    """What the restore and the checks produced (filled step by step, so teardown always has it)."""

    restored: Restored | None = None
    checks: list[CheckResult] = field(default_factory=list)
    rpo: Rpo | None = None
    phases: dict[str, float] = field(default_factory=dict)
    error: BaseException | None = None


@flow(name="restore-verification", stage="verification", log_prints=True)
def verify_restore(vault: VaultTarget | str, dataset: str, backup: str = "latest", target_time: datetime | None = None,
                   scratch: PostgresSource | str | None = None, suites: str | None = None,
                   scratch_port: int | None = None, jobs: int = 2, before_checks: str | None = None,
                   seed: int | None = None, rto_seconds: float | None = None,
                   rpo_seconds: float | None = None) -> VerificationReport:
    """Restore a backup into a scratch target, run the integrity checks, and record the evidence.

    Args:
        vault: the vault (block or URL; the passphrase then comes from SEAWALL_PASSPHRASE).
        dataset: the dataset whose backup is verified.
        backup: `latest`, `random` (a random DONE backup; physical: a random point in its window) or an id.
        target_time: physical backups: recover to this time (must lie in the recoverable window).
        scratch: logical backups: a server (block or DSN) to restore into, in a new database the
            flow drops afterwards; default a throwaway cluster on a free port.
        suites: a folder of Great Expectations suite JSON files, keyed by table.
        scratch_port: port for the throwaway cluster (default: a free one).
        jobs: pg_restore parallel jobs.
        before_checks: testing only: SQL run on the restored copy before the checks.
        seed: seed for `backup="random"` (reproducible drills).
        rto_seconds: the dataset's RTO, recorded beside the measured restore time (deployments pass the policy's).
        rpo_seconds: the dataset's RPO, recorded beside the achieved RPO.

    Returns:
        The VERIFIED report. Otherwise raises VerificationFailed (with `.report`).

    Example:
        ```python
        from flows.restore_verification import verify_restore
        verify_restore("file:///backups/vault", "pg-app", backup="random", suites="/etc/seawall/suites")
        ```
    """
    vault_target = as_vault_target(vault)
    label_run(dataset)
    started, clock = datetime.now(UTC), time.monotonic()
    plan, manifest = plan_verification(vault_target, dataset, backup, target_time, seed)
    retrieve_archived(vault_target, manifest.backup_id)  # archive tiers; not part of the measured restore
    scratch_target = provision_scratch(manifest, as_postgres_source(scratch) if scratch else None, scratch_port)
    outcome = Outcome(phases={"provision": round(time.monotonic() - clock, 3)})
    try:
        restore_and_check(vault_target, manifest, plan, scratch_target, outcome, suites, jobs, before_checks, started)
    finally:
        outcome.phases["teardown"] = teardown_scratch(scratch_target)
    report = build_report(vault_target, manifest, plan, scratch_target, outcome, started).model_copy(
        update={"rto_objective_s": rto_seconds, "rpo_objective_s": rpo_seconds})
    record_verification(vault_target, report)
    verified = judge(report, outcome.error)
    emit_completed("verification", verified, vault_target.display())
    return verified


def restore_and_check(vault: VaultTarget, manifest: Manifest, plan: RestorePlan, scratch: Scratch, outcome: Outcome,
                      suites: str | None, jobs: int, before_checks: str | None, started: datetime) -> None:
    """Restore, then run every check and the RPO measurement as parallel tasks; fills `outcome`."""
    state = restore_to_scratch(vault, manifest, plan, scratch, jobs, return_state=True)
    if not state.is_completed():
        outcome.error = state.result(raise_on_failure=False)
        return
    outcome.restored = restored = state.result()
    outcome.phases.update(restored.phases)
    if before_checks:
        before_checks_task(restored, before_checks)
    clock = time.monotonic()
    target = CheckTarget(manifest, restored, suites, plan.target_time)
    futures = {name: check_task.with_options(task_run_name=f"check-{name}").submit(name, target, vault)
               for name in check_names(target)}
    rpo = measure_rpo_task.submit(manifest, restored, plan, started)
    outcome.checks = [r for name, fut in futures.items() for r in results_of(name, fut)]
    rpo.wait()
    outcome.rpo = rpo.result() if rpo.state.is_completed() else None
    outcome.phases["checks"] = round(time.monotonic() - clock, 3)


def results_of(name: str, future: Any) -> list[CheckResult]:
    """A check task's results, from its return value or from the ChecksFailed it raised."""
    future.wait()
    if future.state.is_completed():
        return future.result()
    exc = future.state.result(raise_on_failure=False)
    if isinstance(exc, ChecksFailed) and exc.results:
        return exc.results
    return [CheckResult(name=name, status="error", detail=clip(f"check task failed: {exc}"))]


def build_report(vault: VaultTarget, manifest: Manifest, plan: RestorePlan, scratch: Scratch, outcome: Outcome,
                 started: datetime) -> VerificationReport:
    """The ledger record of this run (its verdict is derived from the checks and the error)."""
    restored, rpo, phases = outcome.restored, outcome.rpo, outcome.phases
    error = outcome.error
    return VerificationReport(
        vault=vault.display(), dataset=plan.dataset, backup_id=plan.backup_id, kind=plan.kind,
        backup_started_at=manifest.started_at, target=plan.target, target_time=plan.target_time,
        random_pick=plan.random, scratch=scratch.describe(), started_at=started, finished_at=datetime.now(UTC),
        phases=phases, rto_restore_s=restored.seconds if restored else None,
        rto_verified_s=(round(sum(v for k, v in phases.items() if k != "teardown"), 3) if restored else None),
        rpo_s=rpo.seconds if rpo else None, rpo_source=rpo.source if rpo else None,
        restore_point=rpo.restore_point if rpo else None, checks=outcome.checks,
        error=None if error is None else clip(f"restore failed: {getattr(error, 'message', None) or error}"))


def judge(report: VerificationReport, error: BaseException | None) -> VerificationReport:
    """Return a VERIFIED report; raise VerificationFailed (exit code of the restore error, if any)."""
    if report.status == "VERIFIED":
        print(f"VERIFIED backup {report.backup_id}: {summary_line(report.checks)}; RTO {report.rto_restore_s} s, "
              f"RPO {report.rpo_s} s")
        return report
    why = report.error or summary_line(report.checks)
    raise VerificationFailed(f"verification of backup {report.backup_id} ({report.dataset}) FAILED: {why}",
                             report=report, exit_code=error.exit_code if isinstance(error, SeawallError) else None)


@flow(name="postgres-heartbeat", stage="heartbeat")
def postgres_heartbeat(source: PostgresSource | str) -> str:
    """Write one heartbeat row into the source database (deploy it on a schedule, e.g. every 10 s).

    Example:
        ```python
        from flows.restore_verification import postgres_heartbeat
        postgres_heartbeat("host=db dbname=shop user=app")
        ```
    """
    return write_heartbeat(as_postgres_source(source))
