"""The report's assembly and rendering from builders: ages, success rate, cost, suspects, broken vaults."""

from __future__ import annotations

from seawall.manifest import BackupStatus
from seawall.readiness.report import build_report, to_html, to_markdown
from tests.unit.readiness_builders import NOW, backup, drill, policy, vault, verification


def test_rows_counts_and_rendering():
    runs = [backup(hours_ago=h) for h in (50, 26, 2)] + [backup(hours_ago=3, status=BackupStatus.FAILED)]
    evidence = {"main": vault(backups=runs, anomalies={runs[1].backup_id: "mass delete: 40.0% of files gone"}),
                "dr": vault("dr", region="us-east-2", role="dr", backups=[runs[-2]],
                            reports=[verification(hours_ago=1, rto=900, rpo=1800)], drills=[drill(days_ago=2)])}
    report = build_report(policy(), evidence, NOW, ["www"])
    row = report.datasets[0]
    assert row.last_backup_id == runs[2].backup_id and row.success_rate == 0.75 and row.runs_in_window == 4
    assert row.measured_rto_s == 900 and row.measured_rpo_s == 1800 and row.last_drill["status"] == "PASSED"
    assert row.suspicious == {runs[1].backup_id: "mass delete: 40.0% of files gone"}
    assert sum(report.counts.values()) == 9 and report.failed  # immutable-copy: no lock evidence
    text = to_markdown(report)
    assert "| www | tier-1 | 26.0h / 30.0m | 30.0m / 15.0m |" in text
    assert f"**SUSPICIOUS** backup {runs[1].backup_id}: mass delete" in text
    assert "75% of 4" in text and "Prices: AWS S3 list prices, us-east-1" in text
    page = to_html(report)
    assert page.startswith("<!doctype html>") and '<tr class="pass"><td>backup-within-rpo</td>' in page


def test_an_unreadable_vault_is_said_and_judged_unknown():
    evidence = {"main": vault(error="wrong passphrase for vault s3://main-backups/www")}
    report = build_report(policy(), evidence, NOW, ["lonely"])
    assert {c.status for c in report.datasets[0].controls} == {"UNKNOWN"}
    assert "Vault main could not be read: wrong passphrase" in to_markdown(report)
    assert report.datasets[0].cost == []
