"""`recording`: STARTED first, DONE or FAILED last, always; only DONE backups count."""

from __future__ import annotations

import pytest

from seawall.errors import BackupNotFound, IntegrityError, RetryableError, SeawallError
from seawall.lifecycle import first_line, recording
from seawall.manifest import BackupStatus, Manifest
from seawall.stores.memory import MemoryStore
from seawall.vault import Vault
from tests.unit.builders import FAST_SCRYPT, PASSPHRASE, make_manifest, memory_vault


@pytest.fixture
def vault() -> Vault:
    return memory_vault()


def stored(vault: Vault, manifest: Manifest) -> Manifest:
    """The manifest as another process would read it now (fresh Vault, fresh listing)."""
    return Vault.open(vault.store, PASSPHRASE).read_manifest_key(manifest.key)


class FlakyStore(MemoryStore):
    """A real in-memory store whose writes can be switched off, like a bucket that went away."""

    def __init__(self) -> None:
        super().__init__("flaky")
        self.broken = False

    def _put(self, key: str, data: bytes) -> None:
        if self.broken:
            raise RetryableError(f"writing {key}: connection reset")
        super()._put(key, data)


def test_started_is_written_before_the_body_runs(vault: Vault) -> None:
    manifest = make_manifest()
    assert manifest.key not in vault.store._objects
    with recording(vault, manifest):
        seen = stored(vault, manifest)
        assert seen.status == BackupStatus.STARTED
        assert seen.finished_at is None
        assert vault.list_backups() == [seen]
    assert stored(vault, manifest).status == BackupStatus.DONE


def test_done_is_written_at_the_end(vault: Vault) -> None:
    manifest = make_manifest()
    with recording(vault, manifest) as phase:
        phase("uploading")
        manifest.transition(BackupStatus.UPLOADING)
        manifest.stats.files = 42
    assert manifest.status == BackupStatus.DONE and manifest.finished_at is not None
    final = stored(vault, manifest)
    assert final == manifest
    assert final.stats.files == 42 and final.error is None
    assert vault.latest_backup("files") == final


def test_body_may_reach_verifying_itself(vault: Vault) -> None:
    manifest = make_manifest()
    with recording(vault, manifest):
        manifest.transition(BackupStatus.VERIFYING)
        vault.write_manifest(manifest)
        assert stored(vault, manifest).status == BackupStatus.VERIFYING
    assert stored(vault, manifest).status == BackupStatus.DONE


def test_failure_is_recorded_with_phase_and_first_line_and_reraised(vault: Vault) -> None:
    manifest = make_manifest()
    boom = ValueError("disk on fire\nsecond line with details\nthird")
    with pytest.raises(ValueError) as info, recording(vault, manifest) as phase:
        phase("uploading")
        manifest.transition(BackupStatus.UPLOADING)
        raise boom
    assert info.value is boom
    final = stored(vault, manifest)
    assert final.status == BackupStatus.FAILED
    assert final.error == "failure uploading (disk on fire)"
    assert final.finished_at is not None


def test_failure_before_any_phase_says_starting(vault: Vault) -> None:
    manifest = make_manifest()
    with pytest.raises(IntegrityError), recording(vault, manifest):
        raise IntegrityError("chunk chunks/ab/abcd failed authentication")
    assert stored(vault, manifest).error == "failure starting (chunk chunks/ab/abcd failed authentication)"


def test_interrupt_is_recorded_as_failed(vault: Vault) -> None:
    manifest = make_manifest()
    with pytest.raises(KeyboardInterrupt), recording(vault, manifest) as phase:
        phase("reading")
        raise KeyboardInterrupt
    final = stored(vault, manifest)
    assert final.status == BackupStatus.FAILED
    assert final.error == "failure reading (interrupted by SIGINT)"


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (RuntimeError(""), "RuntimeError"),
        (RuntimeError("   \n  "), "RuntimeError"),
        (OSError(28, "No space left on device"), "[Errno 28] No space left on device"),
        (SeawallError("bucket gone", hint="check the URL"), "bucket gone — check the URL"),
        (RuntimeError("  padded  \nnext"), "padded"),
        (RuntimeError("x" * 2000), "x" * 500),
    ],
)
def test_first_line(exc: BaseException, line: str) -> None:
    assert first_line(exc) == line


def test_original_error_wins_when_failed_cannot_be_written() -> None:
    store = FlakyStore()
    vault = Vault.init(store, PASSPHRASE, scrypt=FAST_SCRYPT)
    manifest = make_manifest()
    with pytest.raises(ValueError, match="the real problem"), recording(vault, manifest):
        store.broken = True
        raise ValueError("the real problem")
    assert manifest.status == BackupStatus.FAILED
    store.broken = False
    assert stored(vault, manifest).status == BackupStatus.STARTED  # last state that made it out


def test_failed_and_started_backups_are_never_latest(vault: Vault) -> None:
    assert vault.latest_backup("files") is None
    good = make_manifest(n=1)
    with recording(vault, good):
        pass
    failed = make_manifest(n=2)
    with pytest.raises(RuntimeError), recording(vault, failed):
        raise RuntimeError("nope")
    running = make_manifest(n=3)
    with recording(vault, running):
        assert vault.latest_backup("files") == good
        statuses = {m.backup_id: m.status for m in vault.list_backups("files")}
        assert statuses == {
            good.backup_id: BackupStatus.DONE,
            failed.backup_id: BackupStatus.FAILED,
            running.backup_id: BackupStatus.STARTED,
        }
        with pytest.raises(BackupNotFound):
            vault.require_done(running.backup_id)
    with pytest.raises(BackupNotFound):
        vault.require_done(failed.backup_id)
    assert vault.latest_backup("files") == stored(vault, running)


def test_only_failed_or_started_means_no_latest(vault: Vault) -> None:
    with pytest.raises(RuntimeError), recording(vault, make_manifest()):
        raise RuntimeError("first try failed")
    vault.write_manifest(make_manifest())  # a STARTED one left by a crash
    assert len(vault.list_backups("files")) == 2
    assert vault.latest_backup("files") is None
