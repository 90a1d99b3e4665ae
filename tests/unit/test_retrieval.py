"""The retrieval wait loop: requests once, polls until every object is readable, reports progress,
and gives up with a retryable one-liner at its deadline.

moto completes a RestoreObject at once (tests/e2e/test_cli_tiers.py runs the real requests there),
so the hours AWS takes are modelled here by a memory store whose archived objects stay `restoring`
for a number of polls: the only thing these tests replace is the clock of a retrieval.
"""

from __future__ import annotations

import pytest

from seawall import progress
from seawall.errors import RetryableError
from seawall.manifest import BackupStatus
from seawall.retrieval import backup_tier, retrieve
from seawall.stores.memory import MemoryStore
from seawall.vault import Vault
from tests.unit.builders import FAST_SCRYPT, PASSPHRASE, make_manifest, make_stream


class SlowArchiveStore(MemoryStore):
    """Chunks in DEEP_ARCHIVE whose retrieval finishes after `polls` state checks."""

    def __init__(self, name: str, polls: int):
        super().__init__(name)
        self.polls, self.requests, self.checks = polls, [], {}

    def storage_classes(self, prefix: str) -> dict[str, str]:
        return {i.key: "DEEP_ARCHIVE" for i in self.list(prefix)}

    def needs_retrieval(self, storage_class: str | None) -> bool:
        return storage_class == "DEEP_ARCHIVE"

    def retrieval_seconds(self, storage_class: str | None, tier: str = "Standard") -> float | None:
        return 43200.0 if storage_class == "DEEP_ARCHIVE" else 0.0

    def retrieval_state(self, key: str) -> str:
        if key not in self.requests:
            return "archived"
        self.checks[key] = self.checks.get(key, 0) + 1
        return "ready" if self.checks[key] > self.polls else "restoring"

    def request_retrieval(self, key: str, *, days: int, tier: str) -> None:
        self.requests.append(key)


@pytest.fixture(autouse=True)
def _one_chunk_per_pack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEAWALL_PACK_SIZE", "1")  # every chunk fills its pack: one archived object each


def _vault_with_chunks(store: MemoryStore, n: int = 3):
    vault = Vault.init(store, PASSPHRASE, scrypt=FAST_SCRYPT)
    ids = [vault.put_chunk(f"chunk {i} ünïcode".encode())[0] for i in range(n)]
    vault.commit_chunks()
    manifest = make_manifest(status=BackupStatus.DONE, streams=[make_stream(chunks=[(c, 10) for c in ids])])
    return vault, manifest, ids


def test_waits_until_every_object_is_readable_with_progress() -> None:
    store = SlowArchiveStore("slow-archive", polls=2)
    vault, manifest, ids = _vault_with_chunks(store)
    events = []
    with progress.installed(lambda phase, n, total: events.append((phase, n, total))):
        report = retrieve(vault, manifest, days=2, tier="Bulk", poll_s=0.01, timeout_s=10)
    assert sorted(store.requests) == sorted(vault.chunk_object(c) for c in ids)
    assert all(k.startswith("data/") for k in store.requests)
    assert report["archived"] == 3 and report["requested"] == 3 and report["rounds"] == 1
    assert events[0] == ("retrieving 3 archived objects", 0, 3)
    assert sum(n for _, n, _ in events) == 3
    again = retrieve(vault, manifest, poll_s=0.01, timeout_s=10)  # a retried task asks for nothing twice
    assert again["requested"] == 0 and len(store.requests) == 3


def test_gives_up_at_the_deadline_with_a_retryable_line() -> None:
    store = SlowArchiveStore("never-ready", polls=10**6)
    vault, manifest, _ = _vault_with_chunks(store, n=2)
    with pytest.raises(RetryableError) as info:
        retrieve(vault, manifest, poll_s=0.01, timeout_s=0.05)
    assert "2 of 2 archived objects" in str(info.value) and "run the restore again later" in str(info.value)


def test_tier_and_implied_rto() -> None:
    vault, manifest, _ = _vault_with_chunks(SlowArchiveStore("tiers", polls=0))
    tier = backup_tier(vault, manifest)
    assert (tier.storage_class, tier.archived, tier.objects) == ("DEEP_ARCHIVE", 3, 3)
    assert tier.implied_rto(30.0) == 43230.0 and tier.implied_rto(None) is None
    hot = Vault.init(MemoryStore("hot"), PASSPHRASE, scrypt=FAST_SCRYPT)
    assert backup_tier(hot, manifest).storage_class == "STANDARD"
    assert backup_tier(hot, manifest).implied_rto(30.0) == 30.0


def test_a_store_without_archive_tiers_lists_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing can need a retrieval on a one-tier store: the backup's objects (for a tree backup,
    its whole file index) are not even listed."""
    import seawall.retrieval as retrieval

    vault, manifest, _ = _vault_with_chunks(MemoryStore("one-tier"))
    monkeypatch.setattr(retrieval, "_stream_ids", lambda m: pytest.fail("listed the backup's chunks"))
    report = retrieve(vault, manifest, poll_s=0.01, timeout_s=1)
    assert report["archived"] == 0 and report["requested"] == 0 and report["rounds"] == 0
