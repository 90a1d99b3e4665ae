"""The anomaly detector's signatures, the retention shield, last-clean, and the change statistics."""

from __future__ import annotations

import os
from datetime import timedelta

from seawall.entropy import ByteSampler, shannon_entropy
from seawall.manifest import BackupStats, ChangeStats, Manifest
from seawall.readiness.anomaly import detect, last_clean, suspicious_ids
from seawall.retention import RetentionPolicy, plan_retention
from seawall.sources.tree import Entry, PreviousIndex
from tests.unit.builders import BASE_TIME, make_manifest


def _backup(n: int, *, files: int = 1000, new: int = 5, changed: int = 10, deleted: int = 3, total: int = 10 << 20,
            bytes_new: int = 200 << 10, entropy: float = 4.5, parent: bool = True) -> Manifest:
    stats = BackupStats(files=files, bytes_total=total, bytes_new=bytes_new, stored_bytes_new=bytes_new // 3,
                        changes=ChangeStats(files_new=new, files_changed=changed, files_deleted=deleted,
                                            entropy_bits=entropy, entropy_sample_bytes=4096))
    m = make_manifest(n=n, dataset="www", status="DONE", stats=stats, parent="x" if parent else None,
                      started_at=BASE_TIME + timedelta(days=n))
    return m


def _history(count: int = 12) -> list[Manifest]:
    return [_backup(0, parent=False)] + [_backup(i, changed=8 + i % 5, new=3 + i % 3) for i in range(1, count)]


def test_normal_history_flags_nothing_and_short_history_is_not_evaluated():
    verdicts = detect(_history())
    assert not any(v.suspicious for v in verdicts.values())
    first = list(verdicts.values())
    assert not first[0].evaluated and "no change statistics" in first[0].note
    assert not first[3].evaluated and "needs 5" in first[3].note
    assert first[-1].evaluated


def test_high_entropy_rewrite():
    attack = _backup(20, changed=300, bytes_new=4 << 20, entropy=7.99)
    verdict = detect([*_history(), attack])[attack.backup_id]
    # 300 of the parent's 998 files
    assert verdict.suspicious and verdict.reasons[0].startswith("high-entropy rewrite: 30.1% of files changed")


def test_mass_rewrite_without_entropy_mass_delete_rename_and_size_collapse():
    rewrite = _backup(20, changed=400, entropy=4.4)
    delete = _backup(21, deleted=500, new=2, files=500)
    rename = _backup(22, deleted=400, new=400)
    collapse = _backup(23, total=1 << 20)
    for backup, words in ((rewrite, "mass rewrite"), (delete, "mass delete"), (rename, "mass rename"),
                          (collapse, "size collapse")):
        verdict = detect([*_history(), backup])[backup.backup_id]
        assert verdict.suspicious and words in verdict.reasons[0], (words, verdict.reasons)


def test_a_flagged_backup_does_not_poison_the_baseline():
    history = _history()
    first, second = _backup(20, changed=300, entropy=7.9), _backup(21, changed=310, entropy=7.9)
    verdicts = detect([*history, first, second])
    assert verdicts[first.backup_id].suspicious and verdicts[second.backup_id].suspicious


def test_last_clean_and_retention_keep_suspects_and_the_backup_before():
    history = _history()
    attack = _backup(20, changed=300, entropy=7.9)
    after = _backup(21)
    backups = [*history, attack, after]
    flagged = suspicious_ids(backups)
    assert list(flagged) == [attack.backup_id]
    clean, suspects = last_clean(backups, flagged)
    assert clean.backup_id == history[-1].backup_id and suspects == [attack]
    assert last_clean(history, {}) == (history[-1], [])

    plan = plan_retention(backups, RetentionPolicy(keep_last=1), BASE_TIME + timedelta(days=30), suspicious=flagged)
    assert plan.keep[attack.backup_id][0].startswith("suspicious, kept for investigation: high-entropy")
    assert plan.keep[history[-1].backup_id] == [f"last clean before suspicious {attack.backup_id}"]
    assert attack.backup_id not in plan.remove and after.backup_id in plan.keep


def test_stored_verdicts_count_even_when_recomputation_no_longer_flags():
    history = _history()
    assert suspicious_ids(history, {history[2].backup_id: "flagged last month"}) == {
        history[2].backup_id: "flagged last month"}


def test_old_manifests_without_change_statistics_still_open():
    legacy = make_manifest(status="DONE").model_dump(mode="json")
    legacy["stats"].pop("changes")
    manifest = Manifest.model_validate(legacy)
    assert manifest.stats.changes is None
    assert detect([manifest])[manifest.backup_id].evaluated is False


def test_entropy_of_text_and_random_data():
    assert shannon_entropy(b"aaaa") == 0.0 and shannon_entropy(b"") is None
    sampler = ByteSampler(seed=1)
    for _ in range(3000):  # more chunks than slots: the reservoir stays bounded
        sampler.add(os.urandom(4096))
    assert sampler.sample_bytes <= 1024 * 256 and sampler.entropy() > 7.9
    text = ByteSampler()
    text.add(("order,invoice,berlin,total 12.50\n" * 400).encode())
    assert text.entropy() < 5


def test_previous_index_counts_deleted_files():
    def entry(path: str, kind: str = "f") -> Entry:
        return Entry(path=path, type=kind, mode=0o644, mtime_ns=1)

    previous = PreviousIndex([entry(".", "d"), entry("a"), entry("b"), entry("c", "d"), entry("c/x"), entry("d")])
    assert previous.find("a") is not None
    assert previous.find("c/x") is not None  # "b" passed over unmatched: deleted
    assert previous.finish() == 2  # "b" and "d"


def test_deploy_adds_an_alert_on_suspicious_backups():
    from deployments.build import build
    from deployments.events import SUSPICIOUS
    from tests.unit.readiness_builders import POLICY, policy

    text = POLICY + "alerts:\n  webhooks: [{url: 'http://127.0.0.1:9/hook'}]\n"
    alert = next(a for a in build(policy(text), env={}).automations if a.name == "seawall-backup-suspicious")
    assert alert.trigger["expect"] == [SUSPICIOUS] and alert.notify == ["custom-webhook/seawall-alert-0"]
    assert "last-clean" in alert.body
