"""The verification ledger: one sealed report per restore verification, kept in the vault.

Reports live at `verifications/<dataset>/<backup-id>/<timestamp>` (sealed like manifests, with the
key bound in), next to the backups they vouch for: which backup, restored to which point, when,
where, per-phase seconds, RTO, achieved RPO, every check with its result, and the verdict.
The verdict is derived, never set: VERIFIED only when the restore succeeded and at least one check
ran and every check passed; anything else is FAILED.

Readers: `list_reports`, `latest_verified` (the newest verified-restorable backup of a dataset)
and `status_rows` (what `seawall status` shows).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from seawall.checks import CheckResult
from seawall.crypto import ObjType
from seawall.errors import IntegrityError, ObjectNotFound
from seawall.manifest import BackupStatus, is_backup_id
from seawall.vault import Vault

SCHEMA_VERSION = 1
PREFIX = "verifications/"
Verdict = Literal["VERIFIED", "FAILED"]


class VerificationReport(BaseModel):
    """The evidence of one restore verification.

    Example:
        >>> report = VerificationReport(vault="file:///v", dataset="pg-app", backup_id="20261122T001120Z-a1b2c3",
        ...                             kind="postgres-logical", started_at=now, finished_at=now)  # doctest: +SKIP
        >>> report.status  # doctest: +SKIP
        'FAILED'
    """

    schema_version: int = SCHEMA_VERSION
    verification_id: str = ""
    vault: str
    dataset: str
    backup_id: str
    kind: str
    backup_started_at: datetime | None = None
    target: str = "latest"
    target_time: datetime | None = None
    random_pick: bool = False
    scratch: str = ""
    started_at: datetime
    finished_at: datetime
    phases: dict[str, float] = Field(default_factory=dict, description="Seconds per phase.")
    rto_restore_s: float | None = Field(None, description="Restore wall time: fetch + decode + load/replay.")
    rto_verified_s: float | None = Field(None, description="From start to every check done (scratch included).")
    rpo_s: float | None = None
    rpo_source: str | None = None
    rto_objective_s: float | None = Field(None, description="The dataset's RTO when the run was given it (policy).")
    rpo_objective_s: float | None = Field(None, description="The dataset's RPO when the run was given it (policy).")
    restore_point: datetime | None = Field(None, description="Newest data found in the restored copy.")
    checks: list[CheckResult] = Field(default_factory=list)
    error: str | None = Field(None, description="Why the restore (or the run) failed, if it did.")
    status: Verdict = "FAILED"

    @model_validator(mode="after")
    def _derive_status(self) -> VerificationReport:
        ok = self.error is None and bool(self.checks) and all(c.ok for c in self.checks)
        self.status = "VERIFIED" if ok else "FAILED"
        if not self.verification_id:
            self.verification_id = f"{self.started_at.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}-{secrets.token_hex(2)}"
        return self

    @property
    def key(self) -> str:
        return f"{PREFIX}{self.dataset}/{self.backup_id}/{self.verification_id}"

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.ok]


def store_report(vault: Vault, report: VerificationReport) -> str:
    """Seal and write the report; returns its key (a retry writes the same key again)."""
    vault.put_record(report.key, report.model_dump_json().encode(), ObjType.REPORT)
    return report.key


def read_report(vault: Vault, key: str) -> VerificationReport:
    payload = vault.get_record(key, ObjType.REPORT)
    report = VerificationReport.model_validate_json(payload)
    if report.key != key:
        raise IntegrityError(f"verification report {key} claims to be {report.key}")
    return report


def report_keys(vault: Vault, dataset: str | None = None) -> list[str]:
    """Report keys, oldest first (the verification id starts with its time)."""
    prefix = f"{PREFIX}{dataset}/" if dataset else PREFIX
    keys = [i.key for i in vault.store.list(prefix) if i.key.count("/") == 3]
    keys = [k for k in keys if is_backup_id(k.split("/")[2])]
    return sorted(keys, key=lambda k: k.rsplit("/", 1)[1])


def list_reports(vault: Vault, dataset: str | None = None) -> list[VerificationReport]:
    """Every readable report (oldest first); unreadable ones are skipped, not fatal."""
    out = []
    for key in report_keys(vault, dataset):
        try:
            out.append(read_report(vault, key))
        except (IntegrityError, ObjectNotFound, ValueError):
            continue
    return out


def latest_verified(vault: Vault, dataset: str) -> VerificationReport | None:
    """The newest VERIFIED report of `dataset` (reads newest first, stops at the first)."""
    for key in reversed(report_keys(vault, dataset)):
        try:
            report = read_report(vault, key)
        except (IntegrityError, ObjectNotFound, ValueError):
            continue
        if report.status == "VERIFIED":
            return report
    return None


def _age(when: datetime | None, now: datetime) -> float | None:
    return None if when is None else round((now - when).total_seconds(), 1)


def status_rows(vault: Vault, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per dataset: last backup, last verified-restorable backup and its age, last RTO and RPO."""
    now = now or datetime.now(UTC)
    reports = list_reports(vault)
    manifests, corrupt = vault.catalog()
    datasets = sorted({m.dataset for m in manifests} | {r.dataset for r in reports} | {c.dataset for c in corrupt})
    rows = []
    for ds in datasets:
        done = [m for m in manifests if m.dataset == ds and m.status == BackupStatus.DONE]
        mine = [r for r in reports if r.dataset == ds]
        last = mine[-1] if mine else None
        verified = next((r for r in reversed(mine) if r.status == "VERIFIED"), None)
        rows.append({
            "dataset": ds,
            "last_backup_id": done[-1].backup_id if done else None,
            "last_backup_at": done[-1].started_at.isoformat() if done else None,
            "last_verified_backup_id": verified.backup_id if verified else None,
            "last_verified_at": verified.finished_at.isoformat() if verified else None,
            "verified_backup_age_s": _age(verified and verified.backup_started_at, now),
            "last_verification_status": last.status if last else None,
            "last_verification_at": last.finished_at.isoformat() if last else None,
            "last_rto_s": last.rto_restore_s if last else None,
            "last_rto_verified_s": last.rto_verified_s if last else None,
            "last_rpo_s": last.rpo_s if last else None,
            "corrupt": [{"object": c.key, "backup_id": c.backup_id, "reason": c.reason}
                        for c in corrupt if c.dataset == ds],
        })
    return rows


class VerificationFailed(IntegrityError):
    """A verification ended FAILED; `.report` is the stored report (the CLI prints it)."""

    def __init__(self, message: str, *, report: VerificationReport | None = None, hint: str | None = None,
                 exit_code: int | None = None):
        super().__init__(message, hint=hint, exit_code=exit_code)
        self.report = report
