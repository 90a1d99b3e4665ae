"""The runbook's branches, from builders: failover steps, suspicious backups, nothing to restore."""

from __future__ import annotations

from seawall.manifest import BackupStats, ChangeStats
from seawall.readiness.runbook import render
from tests.unit.readiness_builders import NOW, POLICY, backup, policy, vault, verification

PG_POLICY = POLICY.replace("    files: {path: /srv/www}\n", "    postgres: {dsn_env: WWW_DSN, mode: physical}\n") + """
drills:
  failover: {primary: db1, standby: db2, switch_command: "/usr/local/bin/move-vip db2"}
"""


def _churn(hours_ago: float, changed: int = 10, entropy: float = 4.5):
    stats = BackupStats(files=1000, bytes_total=10 << 20, bytes_new=100 << 10, stored_bytes_new=30 << 10,
                        changes=ChangeStats(files_new=3, files_changed=changed, files_deleted=2, entropy_bits=entropy))
    m = backup(hours_ago=hours_ago, **stats.model_dump(exclude={"changes"}))
    m.stats.changes, m.parent = stats.changes, "parent"
    return m


def test_failover_steps_and_the_verified_backup():
    done = backup(hours_ago=5)
    done.kind = "postgres-physical"
    evidence = {"main": vault(backups=[done]),
                "dr": vault("dr", region="us-east-2", role="dr", reports=[verification(backup_id=done.backup_id)])}
    text = render(policy(PG_POLICY), "www", evidence, NOW, "/etc/seawall/seawall.yaml")
    assert f"Latest **verified** backup: `{done.backup_id}`" in text
    assert f"seawall restore {done.backup_id} --vault 's3://main-backups/www?region=eu-west-1' --to-datadir" in text
    assert "Promote db2" in text and "`/usr/local/bin/move-vip db2`" in text
    assert "phases: fetch 100.0s, restore 3.3m" in text
    assert "No contacts in the policy file" in text


def test_suspicious_backups_are_named_with_the_last_clean_one():
    history = [_churn(24 * (30 - i)) for i in range(12)]
    attack = _churn(2, changed=400, entropy=7.95)
    text = render(policy(), "www", {"main": vault(backups=[*history, attack]), "dr": vault("dr", role="dr")}, NOW)
    assert f"**main holds SUSPICIOUS backups**: {attack.backup_id} (high-entropy rewrite" in text
    assert f"Last clean: {history[-1].backup_id}." in text


def test_nothing_to_restore_and_no_dr_vault():
    text = render(policy(), "lonely", {"main": vault()}, NOW)
    assert "No DONE backup of lonely in any vault: nothing to restore. Escalate now." in text
    assert "No DR vault configured (`copy_to`)" in text
    assert "No standby in the policy" in text
