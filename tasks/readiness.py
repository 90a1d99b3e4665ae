"""Tasks of the readiness report and of the anomaly check after each backup (thin: seawall.readiness)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from seawall.configs.vault import VaultConfig
from seawall.manifest import Manifest
from seawall.readiness.anomaly import Verdict, detect
from tasks.policy import RETRYABLE
from tasks.report import artifact_key
from tasks.runtime import NO_CACHE, create_markdown_artifact, create_table_artifact, task

if TYPE_CHECKING:  # imported where used: the backup flows import this module for the anomaly check only
    from seawall.policy import Policy
    from seawall.readiness.evidence import VaultEvidence
    from seawall.readiness.report import ReadinessReport

REPORT_ARTIFACT = "readiness-report"


@task(name="collect-vault-evidence", **RETRYABLE, cache_policy=NO_CACHE)
def collect_vault_evidence(policy: Policy, vault: str) -> VaultEvidence:
    """Read one vault of the policy into evidence (a vault that fails to open is evidence too).

    Example:
        ```python
        evidence = collect_vault_evidence(load_policy("seawall.yaml"), "region-a")
        ```
    """
    from seawall.readiness.collect import collect_one

    return collect_one(vault, policy.vaults[vault], policy, datetime.now(UTC))


@task(name="judge-readiness", cache_policy=NO_CACHE)
def judge_readiness(policy: Policy, evidence: list[VaultEvidence], datasets: list[str] | None) -> ReadinessReport:
    """Evaluate every control and estimate cost for each dataset (pure).

    Example:
        ```python
        report = judge_readiness(policy, [evidence_a, evidence_b], None)
        ```
    """
    from seawall.readiness.report import build_report

    return build_report(policy, {e.name: e for e in evidence}, datetime.now(UTC), datasets)


@task(name="publish-readiness-report", cache_policy=NO_CACHE)
def publish_readiness_report(report: ReadinessReport) -> str:
    """Publish the report as a Markdown artifact (key `readiness-report`) and the controls as a table.

    Example:
        ```python
        artifact_id = publish_readiness_report(report)
        ```
    """
    from seawall.readiness.report import to_markdown

    rows = [{"dataset": r.dataset, "control": c.control, "status": c.status,
             "evidence": "; ".join([c.summary, *c.evidence])[:500]} for r in report.datasets for c in r.controls]
    create_table_artifact(key=f"{REPORT_ARTIFACT}-controls", table=rows or [{"status": "no datasets"}],
                          description="Readiness controls")
    c = report.counts
    return str(create_markdown_artifact(key=REPORT_ARTIFACT, markdown=to_markdown(report), description=(
        f"DR readiness: {c.get('PASS', 0)} PASS, {c.get('FAIL', 0)} FAIL, {c.get('UNKNOWN', 0)} UNKNOWN")))


@task(name="check-backup-anomaly", **RETRYABLE, cache_policy=NO_CACHE)
def check_backup_anomaly(vault: VaultConfig, manifest: Manifest) -> Verdict:
    """Judge a new backup against its dataset's recent range; record a SUSPICIOUS verdict in the vault.

    Idempotent: the verdict record's key is the backup's, a retry writes the same record.

    Example:
        ```python
        verdict = check_backup_anomaly(VaultTarget.load("BLOCK_NAME"), manifest)
        ```
    """
    from seawall.readiness.anomaly_records import read_anomalies, store_anomaly

    v = vault.open_vault()
    history = v.list_backups(manifest.dataset)
    known = read_anomalies(v, manifest.dataset)
    verdicts = detect([m for m in history if m.backup_id not in known or m.backup_id == manifest.backup_id])
    verdict = verdicts.get(manifest.backup_id, Verdict(manifest.backup_id, evaluated=False, note="not DONE"))
    if verdict.suspicious:
        store_anomaly(v, manifest.dataset, manifest.backup_id, verdict.reasons)
        print(f"SUSPICIOUS backup {manifest.backup_id} of {manifest.dataset}: {'; '.join(verdict.reasons)}")
    return verdict


@task(name="alert-suspicious-backup", cache_policy=NO_CACHE)
def alert_suspicious_backup(manifest: Manifest, verdict: Verdict, vault: str) -> list[str]:
    """Emit `seawall.backup.suspicious` (automations notify on it) and publish the reasons.

    Example:
        ```python
        alert_suspicious_backup(manifest, verdict, "s3://backups/www?region=eu-west-1")
        ```
    """
    from deployments.events import emit_suspicious

    create_markdown_artifact(key=artifact_key("suspicious", manifest.dataset), markdown=(
        f"# SUSPICIOUS backup {manifest.backup_id} of {manifest.dataset}\n\n"
        + "\n".join(f"- {r}" for r in verdict.reasons)
        + f"\n\nKept by retention. Restore the last clean backup: `seawall last-clean {manifest.dataset} "
          f"--vault {vault}`."))
    return emit_suspicious(manifest, verdict.reasons, vault)
