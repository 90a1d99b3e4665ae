"""The file-tree flows under Prefect: backup → restore → verify, artifacts, retries, failures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from blocks.vault import VaultTarget
from flows.backup import backup_files
from flows.restore import restore_files
from flows.verify import verify_vault_flow
from seawall.crypto import ScryptParams
from seawall.errors import ConfigError, RetryableError
from seawall.manifest import BackupStatus
from seawall.sources.compare import compare_trees
from seawall.sources.sample import make_sample_tree
from seawall.verify import VaultCheckFailed
from tasks.policy import only_retryable


@pytest.fixture
def target(tmp_path: Path) -> VaultTarget:
    block = VaultTarget(url=f"file://{tmp_path / 'vault'}", passphrase="flow-test")
    block.init_vault(scrypt=ScryptParams(n=2**10))
    return block


def test_backup_restore_verify(target: VaultTarget, tmp_path: Path):
    source = tmp_path / "src"
    make_sample_tree(source)
    first = backup_files(str(source), target)
    assert first.status == BackupStatus.DONE and first.stats.files > 20
    second = backup_files(str(source), target)
    assert second.parent == first.backup_id
    assert second.stats.bytes_read == 0 and second.stats.files_unchanged == first.stats.files
    restored = restore_files(second.backup_id, target, str(tmp_path / "out"))
    assert restored == {"files": first.stats.files, "skipped_items": []}
    assert compare_trees(source, tmp_path / "out") == []
    report = verify_vault_flow(target, read_data=True)
    assert report.ok and len(report.backups) == 2


def test_artifacts_are_published(target: VaultTarget, tmp_path: Path):
    source = tmp_path / "src"
    make_sample_tree(source)
    manifest = backup_files(str(source), target, dataset="artifacts")
    import anyio

    async def read():
        async with get_client() as client:
            return await client.read_artifacts()

    artifacts = anyio.run(read)
    tables = [a for a in artifacts if a.key == "backup-artifacts"]
    assert tables, [a.key for a in artifacts]
    assert manifest.backup_id in (tables[0].description or "")


def test_verify_flow_fails_on_corruption(target: VaultTarget, tmp_path: Path):
    source = tmp_path / "src"
    make_sample_tree(source)
    manifest = backup_files(str(source), target)
    victim = max((p for p in (tmp_path / "vault" / "data").rglob("*") if p.is_file()),
                 key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(VaultCheckFailed) as info:
        verify_vault_flow(target, read_data=True)
    assert manifest.backup_id in str(info.value) and victim.name in str(info.value)


def test_preflight_stops_before_writing(target: VaultTarget, tmp_path: Path):
    before = sorted(p for p in (tmp_path / "vault").rglob("*"))
    with pytest.raises(ConfigError, match="does not exist"):
        backup_files(str(tmp_path / "missing"), target)
    assert sorted(p for p in (tmp_path / "vault").rglob("*")) == before


class _State:
    def __init__(self, exc: BaseException | None):
        self.exc = exc

    def result(self):
        if self.exc:
            raise self.exc
        return None


@pytest.mark.parametrize(("exc", "retry"), [
    (RetryableError("throttled"), True),
    (ConfigError("bad"), False),
    (ValueError("a bug"), False),
    (None, False),
])
def test_only_retryable_errors_are_retried(exc, retry):
    assert only_retryable(None, None, _State(exc)) is retry


def test_transient_failure_is_retried_then_succeeds(target: VaultTarget, tmp_path: Path, monkeypatch):
    """A store that fails twice with a retryable error: the task retries and the backup is DONE."""
    from seawall.stores.local import LocalStore
    from tasks.files import backup_files_task

    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("hello\n")
    calls = {"n": 0}
    real_put = LocalStore.put_deferred

    def flaky_put(self, key, data):
        if key.startswith("data/") and calls["n"] < 2:  # a pack upload
            calls["n"] += 1
            raise RetryableError("injected: connection reset")
        return real_put(self, key, data)

    monkeypatch.setattr(LocalStore, "put_deferred", flaky_put)
    fast = backup_files_task.with_options(retry_delay_seconds=0, retry_jitter_factor=None)
    from seawall.manifest import new_backup_id

    manifest = fast(target, str(source), "flaky", new_backup_id())
    assert manifest.status == BackupStatus.DONE and calls["n"] == 2
    assert os.path.exists(tmp_path / "vault" / "manifests" / "flaky" / manifest.backup_id)
