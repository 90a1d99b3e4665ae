"""Tasks of the restore verification flow: plan, scratch, restore, checks, RPO, teardown, record.

Thin calls into `seawall.checks` / `seawall.ledger`. Planning, checks and recording retry
transient errors; the restore does not (a half-restored scratch target cannot be reused: the next
run restores into a fresh one), and teardown never fails.
"""

from __future__ import annotations

import random
import re
import time
from datetime import datetime

from seawall import heartbeat
from seawall.checks import CheckResult, ChecksFailed, failures, summary_line
from seawall.checks.plan import RestorePlan, plan_restore
from seawall.checks.registry import CheckTarget, needs_vault, run_check
from seawall.checks.restore import Restored, Rpo, measure_rpo, restore_into, run_sql
from seawall.checks.scratch import Scratch, provision, teardown
from seawall.checks.window import recoverable_window
from seawall.configs.postgres import PostgresConfig
from seawall.configs.vault import VaultConfig
from seawall.ledger import VerificationReport, store_report
from seawall.manifest import Manifest
from tasks.policy import RETRYABLE
from tasks.runtime import NO_CACHE, create_markdown_artifact, create_table_artifact, task

# Inputs hold manifests (every chunk id) and scratch connections: never hash nor cache them.
_TASK = dict(RETRYABLE, cache_policy=NO_CACHE)
_ONCE = dict(cache_policy=NO_CACHE)


@task(name="plan-verification", **_TASK)
def plan_verification(vault: VaultConfig, dataset: str, backup: str, target_time: datetime | None,
                      seed: int | None = None) -> tuple[RestorePlan, Manifest]:
    """Pick the backup (latest, random, or an id) and, for PITR, the point in time.

    Example:
        ```python
        plan, manifest = plan_verification(VaultTarget.load("VAULT"), "pg-app", "random", None)
        ```
    """
    v = vault.open_vault()
    backups = v.list_backups(dataset)
    plan = plan_restore(backups, dataset, backup, target_time, window_of=lambda m: recoverable_window(v, m),
                        rng=random.Random(seed))
    manifest = next(m for m in backups if m.backup_id == plan.backup_id)
    print(f"verifying {plan.describe()}")
    return plan, manifest


@task(name="provision-scratch", **_TASK)
def provision_scratch(manifest: Manifest, scratch: PostgresConfig | None, port: int | None) -> Scratch:
    """Create the scratch target (throwaway cluster, new database, or temp folder).

    Example:
        ```python
        scratch = provision_scratch(manifest, None, None)
        ```
    """
    return provision(manifest.kind, manifest.source, server=scratch.get_pgconn() if scratch else None, port=port)


@task(name="restore-to-scratch", **_ONCE)
def restore_to_scratch(vault: VaultConfig, manifest: Manifest, plan: RestorePlan, scratch: Scratch,
                       jobs: int = 2) -> Restored:
    """Restore the planned backup into the scratch target, timed per phase.

    Example:
        ```python
        restored = restore_to_scratch(VaultTarget.load("VAULT"), manifest, plan, scratch)
        ```
    """
    return restore_into(vault.open_vault(), manifest, plan, scratch, passphrase=vault.get_passphrase(),
                        vault_url=vault.url, jobs=jobs)


@task(name="before-checks", **_ONCE)
def before_checks_task(restored: Restored, sql: str) -> None:
    """Testing hook: run SQL on the restored copy before the checks (e.g. tamper with a table).

    Example:
        ```python
        before_checks_task(restored, "DELETE FROM public.orders WHERE id < 10")
        ```
    """
    run_sql(restored.conn_for(restored.databases[0]), sql)


@task(name="check", **_TASK)
def check_task(name: str, target: CheckTarget, vault: VaultConfig) -> list[CheckResult]:
    """Run one integrity check on the copy; the task fails (ChecksFailed) when any result is not a pass.

    Example:
        ```python
        results = check_task("amcheck", target, VaultTarget.load("VAULT"))
        ```
    """
    # Opened here, not inside the check, so a transient vault error is retried like any task's.
    results = run_check(name, target, vault.open_vault() if needs_vault(name) else None)
    if failures(results):
        raise ChecksFailed(f"check {name}: {summary_line(results)}", results=results)
    return results


@task(name="measure-rpo", **_TASK)
def measure_rpo_task(manifest: Manifest, restored: Restored, plan: RestorePlan, started: datetime) -> Rpo:
    """Achieved RPO from the copy's heartbeat table (or the WAL / backup time without one).

    Example:
        ```python
        rpo = measure_rpo_task(manifest, restored, plan, started)
        ```
    """
    return measure_rpo(manifest, restored, plan, started)


@task(name="teardown-scratch", **_ONCE)
def teardown_scratch(scratch: Scratch) -> float:
    """Remove the scratch target (never fails; problems are logged); returns the seconds it took.

    Example:
        ```python
        teardown_scratch(scratch)
        ```
    """
    start = time.monotonic()
    for problem in teardown(scratch):
        print(f"warning: {problem}")
    return round(time.monotonic() - start, 3)


@task(name="record-verification", **_TASK)
def record_verification(vault: VaultConfig, report: VerificationReport) -> str:
    """Store the report in the vault ledger and publish it as Prefect artifacts; returns its key.

    Example:
        ```python
        key = record_verification(VaultTarget.load("VAULT"), report)
        ```
    """
    key = store_report(vault.open_vault(), report)
    publish_report(report)
    return key


@task(name="write-heartbeat", **RETRYABLE)
def write_heartbeat(source: PostgresConfig) -> str:
    """Write one row into the source's `seawall_heartbeat` table (schedule it every N seconds).

    Example:
        ```python
        write_heartbeat(PostgresSource.load("BLOCK_NAME"))
        ```
    """
    return heartbeat.beat(source.get_pgconn()).isoformat()


# ---- artifacts ----------------------------------------------------------------------------------
def artifact_key(dataset: str) -> str:
    """`verify-restore-<dataset>` (artifact keys allow lowercase letters, digits and dashes)."""
    return re.sub(r"[^a-z0-9-]+", "-", f"verify-restore-{dataset}".lower()).strip("-")[:100]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _against(measured: float | None, objective: float | None) -> str:
    """`; objective 1800.0 s: met` (nothing when no objective was given)."""
    if objective is None:
        return ""
    verdict = "not measured" if measured is None else ("met" if measured <= objective else "**MISSED**")
    return f"; objective {_seconds(objective)}: {verdict}"


def report_markdown(report: VerificationReport) -> str:
    """The markdown summary: verdict, backup, target, RTO, RPO, phases, failing checks."""
    lines = [f"# Restore verification: {report.status}", "",
             f"- **dataset** {report.dataset}, **backup** {report.backup_id} ({report.kind})",
             f"- **target** {report.target}" + (" (random pick)" if report.random_pick else ""),
             f"- **scratch** {report.scratch}",
             f"- **RTO** restore {_seconds(report.rto_restore_s)}, to verified {_seconds(report.rto_verified_s)}"
             + _against(report.rto_verified_s, report.rto_objective_s),
             f"- **achieved RPO** {_seconds(report.rpo_s)} (from {report.rpo_source or '-'}; "
             f"newest data {report.restore_point.isoformat() if report.restore_point else '-'})"
             + _against(report.rpo_s, report.rpo_objective_s),
             "- **phases** " + ", ".join(f"{k} {v:.1f} s" for k, v in report.phases.items())]
    if report.error:
        lines.append(f"- **error** {report.error}")
    lines += ["", f"{len(report.checks)} checks, {len(report.failed_checks)} not passed."]
    lines += [f"- `{c.label()}` **{c.status}**: {c.detail}" for c in report.failed_checks[:50]]
    return "\n".join(lines)


def publish_report(report: VerificationReport) -> None:
    """A markdown summary and a table of every check, both keyed `verify-restore-<dataset>`."""
    rows = [{"check": c.name, "table": c.table or "", "status": c.status, "seconds": c.seconds,
             "detail": c.detail[:500]} for c in report.checks]
    key = artifact_key(report.dataset)
    create_markdown_artifact(key=key, markdown=report_markdown(report),
                             description=f"Restore verification of {report.backup_id}: {report.status}")
    create_table_artifact(key=f"{key}-checks"[:100], table=rows or [{"check": "none", "status": "error"}],
                          description=f"Checks of backup {report.backup_id} ({report.status})")
