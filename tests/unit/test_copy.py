"""Pure parts of the cross-region copy: token bucket, selection, WAL ranges, lag, lock specs, and a
whole copy between two in-memory vaults (verification, failure isolation, resumption)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from seawall.copy import CopySettings, LockSpec, copy_vault, merge_stats, prepare_destination, same_location
from seawall.copy.plan import parse_selection, replication_lag, select_backups, wal_needed
from seawall.copy.transfer import TokenBucket
from seawall.crypto import ObjType
from seawall.errors import BackupNotFound, ConfigError
from seawall.lifecycle import recording
from seawall.manifest import BackupStatus, StreamRef, new_manifest
from seawall.stores.memory import MemoryStore
from tests.unit.builders import BASE_TIME, FAST_SCRYPT, flip_chunk_byte, make_manifest, memory_vault, random_bytes


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_lets_the_burst_through_then_charges_debt(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr("seawall.copy.transfer.time.sleep", slept.append)
    clock = FakeClock()
    bucket = TokenBucket(1000, burst=500, clock=clock)
    assert bucket.take(500) == 0
    assert bucket.take(1000) == pytest.approx(1.0)  # a request beyond the bucket goes into debt
    clock.now += 1.0  # the debt is paid off by the refill
    assert bucket.take(200) == pytest.approx(0.2)
    assert slept == [pytest.approx(1.0), pytest.approx(0.2)]
    with pytest.raises(ConfigError):
        TokenBucket(0)


def test_selection_parsing():
    assert parse_selection(None) == "all" and parse_selection("latest") == "latest"
    assert parse_selection("20260101T000000Z-abcdef, 20260102T000000Z-abcdef") == [
        "20260101T000000Z-abcdef", "20260102T000000Z-abcdef"]
    for bad in ("newest", "", ["x"]):
        with pytest.raises(ConfigError):
            parse_selection(bad)


def test_select_backups_latest_per_dataset_and_ids_oldest_first():
    a1, b1, a2 = (make_manifest(n=n, dataset=d) for n, d in ((1, "a"), (2, "b"), (3, "a")))
    assert select_backups([a2, b1, a1], "all") == [a1, b1, a2]
    assert select_backups([a2, b1, a1], "latest") == [b1, a2]
    assert select_backups([a1, b1, a2], [a2.backup_id, a1.backup_id]) == [a1, a2]
    with pytest.raises(BackupNotFound):
        select_backups([a1], [b1.backup_id])


def test_wal_needed_spans_start_to_stop_across_a_log_boundary():
    m = make_manifest(kind="postgres-physical", source={
        "system_identifier": "7", "start_wal_file": "0000000100000000000000FE",
        "stop_wal_file": "000000010000000100000001", "wal_segment_size": 16 << 20})
    assert wal_needed(m) == [f"wal/7/{n}" for n in ("0000000100000000000000FE", "0000000100000000000000FF",
                                                     "000000010000000100000000", "000000010000000100000001")]
    assert wal_needed(make_manifest()) == []


def test_replication_lag_per_dataset():
    t = BASE_TIME
    newest = {"a": {"source": t + timedelta(hours=5), "dest": t}, "b": {"source": t, "dest": None}}
    rows = {r["dataset"]: r for r in replication_lag(newest, [], now=t + timedelta(hours=6))}
    assert rows["a"]["lag_s"] == 5 * 3600 and rows["a"]["dest_age_s"] == 6 * 3600
    assert rows["b"]["lag_s"] is None and rows["b"]["dest_newest"] is None


def test_lock_spec_and_stats_helpers():
    assert LockSpec.parse(None, None) is None
    assert LockSpec.parse("compliance", 7) == LockSpec("COMPLIANCE", 7)
    for mode, days in (("compliance", None), (None, 3), ("legal", 3), ("governance", 0)):
        with pytest.raises(ConfigError):
            LockSpec.parse(mode, days)
    total = merge_stats([{"objects_copied": 2, "bytes_copied": 100, "seconds": 1.0, "throughput_bps": 1},
                         {"objects_copied": 1, "bytes_copied": 300, "seconds": 1.0}])
    assert total["bytes_copied"] == 400 and total["throughput_bps"] == 200
    assert same_location("file:///a/b/../c", "file:///a/c") and not same_location("file:///a", "file:///b")


# ---- a whole copy between in-memory vaults ------------------------------------------------------------
def _backup(vault, dataset: str, *payloads: bytes):
    manifest = new_manifest(dataset, "files")
    with recording(vault, manifest):
        for i, payload in enumerate(payloads):
            chunk_id, _ = vault.put_chunk(payload)
            manifest.streams.append(StreamRef(name=f"s{i}", size=len(payload), chunks=[(chunk_id, len(payload))]))
    return manifest


def test_memory_copy_isolates_a_corrupt_chunk_and_resumes():
    src = memory_vault(name="src")
    shared, only_a, only_b = random_bytes(5000), random_bytes(7000), random_bytes(9000)
    a = _backup(src, "a", shared, only_a)
    b = _backup(src, "b", shared, only_b)
    bad_id = a.streams[1].chunks[0][0]
    pack = src.chunk_object(bad_id)
    intact = src.store.get(pack)
    assert flip_chunk_byte(src, bad_id, at=0.99) == pack  # one pack holds every chunk here

    dst = prepare_destination(src, MemoryStore("dst"), "dr", init=True, scrypt=FAST_SCRYPT)
    report = copy_vault(src, dst, settings=CopySettings(workers=2))
    status = {r.dataset: r for r in report.backups}
    assert status["b"].status == "copied" and status["a"].status == "failed" and bad_id in status["a"].error
    assert pack in status["a"].error
    assert not dst.has_chunk(bad_id) and not dst.store.exists(a.key)
    assert not [k for k in dst.store._objects if k.startswith("chunks/")]
    assert dst.keyring.open(ObjType.MANIFEST, b.key, dst.store.get(b.key))  # byte-identical, opens there

    src.store.put(pack, intact)  # repaired at the source
    again = copy_vault(src, dst)
    assert {r.dataset: r.status for r in again.backups} == {"a": "copied", "b": "present"}
    assert again.stats["objects_copied"] == 2  # a pack of the repaired chunk, a's manifest: nothing else moved
    assert [b.chunks_copied for b in again.backups if b.dataset == "a"] == [1]
    assert dst.require_done(a.backup_id).status == BackupStatus.DONE
