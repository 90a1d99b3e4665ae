"""The readiness-report flow: read every vault of a policy, judge each dataset, publish the artifact.

    load policy → collect evidence (one task per vault) → judge controls and cost → publish artifact
    → fail the run if a control FAILED (the deployment's failure automation is the alert)
"""

from __future__ import annotations

from seawall.errors import ExitCode, PermanentError
from seawall.policy import load_policy
from seawall.readiness.collect import unknown_datasets, vaults_for
from seawall.readiness.report import ReadinessReport
from tasks.readiness import collect_vault_evidence, judge_readiness, publish_readiness_report
from tasks.runtime import flow


class ControlsFailed(PermanentError):
    """A readiness control FAILED (or, strict, was UNKNOWN); `.report` is the published report."""

    exit_code = ExitCode.CONTROL_FAILED

    def __init__(self, message: str, *, report: ReadinessReport):
        super().__init__(message)
        self.report = report


@flow(name="readiness-report", stage="readiness", log_prints=True)
def readiness_report(policy_file: str, datasets: list[str] | None = None, fail_on_failed: bool = True,
                     strict: bool = False) -> ReadinessReport:
    """Judge DR readiness from the evidence in the policy's vaults and publish it (artifact `readiness-report`).

    Example:
        ```python
        from flows.readiness import readiness_report
        report = readiness_report("/etc/seawall/seawall.yaml")
        ```
    """
    policy = load_policy(policy_file)
    unknown_datasets(policy, datasets)
    names = datasets or sorted(policy.datasets)
    evidence = [collect_vault_evidence(policy, vault) for vault in vaults_for(policy, names)]
    report = judge_readiness(policy, evidence, datasets)
    publish_readiness_report(report)
    bad = report.failed or (strict and report.unknown)
    if fail_on_failed and bad:
        c = report.counts
        raise ControlsFailed(f"readiness: {c['FAIL']} control(s) FAILED, {c['UNKNOWN']} UNKNOWN", report=report)
    return report
