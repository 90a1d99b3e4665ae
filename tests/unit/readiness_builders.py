"""Builders for readiness evidence: real records (manifests, ledger reports, drill reports), no mocks."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from seawall.checks import CheckResult
from seawall.drill.state import DrillReport, Measurements
from seawall.ledger import VerificationReport
from seawall.manifest import BackupStats, BackupStatus, Manifest
from seawall.policy import parse_policy
from seawall.readiness.evidence import LockFact, VaultEvidence, WrapperCheck
from tests.unit.builders import make_manifest

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
_ids = itertools.count(1000)

POLICY = """
version: 1
vaults:
  main: {url: "s3://prod-backups/www?region=eu-west-1"}
  dr: {url: "s3://dr-backups/www?region=us-east-2", role: dr}
datasets:
  www:
    files: {path: /srv/www}
    vault: main
    copy_to: dr
    rpo: 26h
    rto: 30m
    tier: tier-1
    schedule: {cron: "0 2 * * *", timezone: UTC}
  lonely:
    files: {path: /srv/lonely}
    vault: main
    rpo: 26h
    rto: 30m
    schedule: {cron: "0 2 * * *", timezone: UTC}
readiness:
  restore_tested_within: 7d
  drill_within: 35d
"""


def policy(text: str = POLICY):
    return parse_policy(text)


def backup(dataset: str = "www", *, hours_ago: float = 2, status: BackupStatus = BackupStatus.DONE,
           **stats: Any) -> Manifest:
    n = next(_ids)
    started = NOW - timedelta(hours=hours_ago)
    m = make_manifest(n=n, dataset=dataset, started_at=started, stats=BackupStats(**stats))
    m.backup_id = f"{started:%Y%m%dT%H%M%SZ}-{n:06x}"
    m.status, m.finished_at = status, started + timedelta(minutes=5)
    return m


def verification(dataset: str = "www", *, hours_ago: float = 3, ok: bool = True, rto: float | None = 600,
                 rpo: float | None = 3600, backup_id: str = "20261201T000000Z-aaaaaa") -> VerificationReport:
    done = NOW - timedelta(hours=hours_ago)
    return VerificationReport(vault="s3://dr-backups/www?region=us-east-2", dataset=dataset, backup_id=backup_id,
                              kind="files", started_at=done - timedelta(minutes=10), finished_at=done,
                              rto_restore_s=rto and rto / 2, rto_verified_s=rto, rpo_s=rpo,
                              phases={"fetch": 100.0, "restore": 200.0},
                              checks=[CheckResult(name="tree", status="pass" if ok else "fail")])


def drill(dataset: str = "www", *, days_ago: float = 3, status: str = "PASSED", rto: float | None = 500,
          kind: str = "restore") -> DrillReport:
    done = NOW - timedelta(days=days_ago)
    return DrillReport(drill_id=f"{done:%Y%m%dT%H%M%SZ}-{next(_ids):06x}", kind=kind, primary=dataset,
                       standby="x", started_at=done - timedelta(minutes=20), finished_at=done, steps=[],
                       measurements=Measurements(rto_s=rto), status=status)


def wrapper(status: str = "PASS", kind: str = "passphrase") -> WrapperCheck:
    return WrapperCheck(id=f"w{next(_ids)}", kind=kind, status=status, detail=f"{status.lower()} by the builder")


def vault(name: str = "main", *, region: str | None = "eu-west-1", media: str = "object-storage",
          role: str = "primary", **fields: Any) -> VaultEvidence:
    fields.setdefault("wrappers", [wrapper()])
    return VaultEvidence(name=name, url=f"s3://{name}-backups/www?region={region}", role=role, region=region,
                         media=media, **fields)


def locked(m: Manifest, *, days: float = 30, mode: str | None = "COMPLIANCE") -> dict[str, LockFact]:
    until = NOW + timedelta(days=days) if mode else None
    return {m.dataset: LockFact(backup_id=m.backup_id, supported=True, mode=mode, retain_until=until)}
