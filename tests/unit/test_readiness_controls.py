"""Each readiness control with a vault that passes, one that fails, and UNKNOWN where it cannot judge."""

from __future__ import annotations

from seawall.manifest import BackupStatus
from seawall.readiness import controls as c
from seawall.readiness.evidence import LockFact
from tests.unit.readiness_builders import (
    NOW,
    backup,
    drill,
    locked,
    policy,
    vault,
    verification,
    wrapper,
)

P = policy()


def ctx(primary=None, dr="default", dataset: str = "www") -> c.Context:
    primary = primary if primary is not None else vault()
    if dr == "default":
        dr = vault("dr", region="us-east-2", role="dr")
    return c.Context(dataset, P.datasets[dataset], P.readiness, primary, dr, NOW)


def test_backup_within_rpo():
    assert c.backup_within_rpo(ctx(vault(backups=[backup(hours_ago=30), backup(hours_ago=5)]))).status == "PASS"
    failing = c.backup_within_rpo(ctx(vault(backups=[backup(hours_ago=30)])))
    assert failing.status == "FAIL" and "RPO 26.0h" in failing.summary
    assert c.backup_within_rpo(ctx(vault(backups=[]))).status == "FAIL"
    # a FAILED newer run does not count
    runs = [backup(hours_ago=30), backup(hours_ago=1, status=BackupStatus.FAILED)]
    assert c.backup_within_rpo(ctx(vault(backups=runs))).status == "FAIL"
    unknown = c.backup_within_rpo(ctx(vault(error="wrong passphrase for vault s3://...")))
    assert unknown.status == "UNKNOWN" and "wrong passphrase" in unknown.summary


def test_offsite_copy():
    dr_ok = vault("dr", region="us-east-2", role="dr", backups=[backup(hours_ago=3)])
    assert c.offsite_copy(ctx(dr=dr_ok)).status == "PASS"
    same_region = vault("dr", region="eu-west-1", role="dr", backups=[backup(hours_ago=3)])
    result = c.offsite_copy(ctx(dr=same_region))
    assert result.status == "FAIL" and "same region" in result.summary
    stale = vault("dr", region="us-east-2", role="dr", backups=[backup(hours_ago=50)])
    assert c.offsite_copy(ctx(dr=stale)).status == "FAIL"
    empty = vault("dr", region="us-east-2", role="dr")
    assert c.offsite_copy(ctx(dr=empty)).status == "FAIL"
    no_dr = c.offsite_copy(ctx(dr=None, dataset="lonely"))
    assert no_dr.status == "UNKNOWN" and "no DR vault configured" in no_dr.summary
    region_unknown = vault("dr", region=None, role="dr", backups=[backup(hours_ago=3)])
    assert c.offsite_copy(ctx(dr=region_unknown)).status == "UNKNOWN"


def test_immutable_copy():
    newest = backup(hours_ago=3)
    dr_locked = vault("dr", region="us-east-2", role="dr", backups=[newest], locks=locked(newest))
    passing = c.immutable_copy(ctx(dr=dr_locked))
    assert passing.status == "PASS" and "COMPLIANCE" in passing.summary
    expired = vault("dr", region="us-east-2", role="dr", backups=[newest], locks=locked(newest, days=-1))
    assert c.immutable_copy(ctx(dr=expired)).status == "FAIL"
    unlocked = vault("dr", region="us-east-2", role="dr", backups=[newest], locks=locked(newest, mode=None))
    assert c.immutable_copy(ctx(dr=unlocked)).status == "FAIL"
    local = vault("dr", region="local", media="disk", role="dr", backups=[newest],
                  locks={"www": LockFact(backup_id=newest.backup_id, supported=False)})
    result = c.immutable_copy(ctx(dr=local))
    assert result.status == "FAIL" and any("no Object Lock here" in e for e in result.evidence)
    unreadable = vault("dr", region="us-east-2", role="dr", backups=[newest],
                       locks={"www": LockFact(backup_id=newest.backup_id, supported=True, error="AccessDenied")})
    assert c.immutable_copy(ctx(dr=unreadable)).status == "UNKNOWN"


def test_three_copies_two_media():
    main = vault(backups=[backup()])
    dr = vault("dr", region="us-east-2", role="dr", backups=[backup()])
    passing = c.three_copies_two_media(ctx(main, dr))
    assert passing.status == "PASS" and passing.summary.startswith("3 copies on 2 media")
    assert c.three_copies_two_media(ctx(main, vault("dr", region="us-east-2", role="dr"))).status == "FAIL"
    disks = [vault(m, media="disk", backups=[backup()]) for m in ("main", "dr")]
    one_medium = c.three_copies_two_media(ctx(*disks))
    assert one_medium.status == "FAIL" and "1 media" in one_medium.summary


def test_restore_tested_within_days():
    dr = vault("dr", region="us-east-2", role="dr", reports=[verification(hours_ago=30)])
    assert c.restore_tested(ctx(dr=dr)).status == "PASS"
    old = vault("dr", region="us-east-2", role="dr", reports=[verification(hours_ago=24 * 9)])
    assert c.restore_tested(ctx(dr=old)).status == "FAIL"
    failed_only = vault("dr", region="us-east-2", role="dr", reports=[verification(ok=False)])
    assert c.restore_tested(ctx(dr=failed_only)).status == "FAIL"
    none = c.restore_tested(ctx())
    assert none.status == "UNKNOWN" and "no verification ledger yet" in none.summary


def test_rto_measured_under_target():
    fast = vault("dr", region="us-east-2", role="dr", reports=[verification(rto=900)])
    assert c.rto_measured(ctx(dr=fast)).status == "PASS"
    slow = vault("dr", region="us-east-2", role="dr", reports=[verification(rto=2400)])
    assert c.rto_measured(ctx(dr=slow)).status == "FAIL"
    # the newest measurement wins: a drill after a slow verification
    both = vault("dr", region="us-east-2", role="dr", reports=[verification(rto=2400, hours_ago=100)],
                 drills=[drill(days_ago=1, rto=700)])
    assert c.rto_measured(ctx(dr=both)).status == "PASS"
    assert c.rto_measured(ctx()).status == "UNKNOWN"


def test_rpo_measured_under_target():
    good = vault("dr", region="us-east-2", role="dr", reports=[verification(rpo=7200)])
    assert c.rpo_measured(ctx(dr=good)).status == "PASS"
    bad = vault("dr", region="us-east-2", role="dr", reports=[verification(rpo=30 * 3600)])
    assert c.rpo_measured(ctx(dr=bad)).status == "FAIL"
    unmeasured = vault("dr", region="us-east-2", role="dr", reports=[verification(rpo=None)])
    assert c.rpo_measured(ctx(dr=unmeasured)).status == "UNKNOWN"


def test_encrypted_with_valid_key():
    assert c.encrypted_with_valid_key(ctx()).status == "PASS"
    damaged = vault(wrappers=[wrapper(), wrapper("FAIL")])
    result = c.encrypted_with_valid_key(ctx(damaged))
    assert result.status == "FAIL" and "1 of 3" in result.summary
    kms_disabled = vault("dr", region="us-east-2", role="dr", wrappers=[wrapper("FAIL", kind="kms")])
    assert c.encrypted_with_valid_key(ctx(dr=kms_disabled)).status == "FAIL"
    other = vault(wrappers=[wrapper(), wrapper("UNKNOWN")])
    assert c.encrypted_with_valid_key(ctx(other)).status == "UNKNOWN"
    assert c.encrypted_with_valid_key(ctx(vault(wrappers=[]), None, "lonely")).status == "FAIL"


def test_drill_within_days():
    recent = vault("dr", region="us-east-2", role="dr", drills=[drill(days_ago=3)])
    assert c.drill_within(ctx(dr=recent)).status == "PASS"
    old = vault("dr", region="us-east-2", role="dr", drills=[drill(days_ago=60)])
    assert c.drill_within(ctx(dr=old)).status == "FAIL"
    failed = vault("dr", region="us-east-2", role="dr", drills=[drill(days_ago=1, status="FAILED")])
    assert c.drill_within(ctx(dr=failed)).status == "FAIL"
    other_dataset = vault("dr", region="us-east-2", role="dr", drills=[drill("lonely", days_ago=1)])
    assert c.drill_within(ctx(dr=other_dataset)).status == "UNKNOWN"


def test_nothing_passes_on_an_unreadable_vault():
    broken = vault(error="no seawall vault at s3://main-backups/www")
    dr = vault("dr", region="us-east-2", role="dr", error="connection refused")
    results = c.evaluate(ctx(broken, dr))
    assert [r.control for r in results] == list(c.CONTROLS)
    assert {r.status for r in results} == {"UNKNOWN"}, [(r.control, r.status) for r in results]
