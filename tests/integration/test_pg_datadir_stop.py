"""pg_backup_stop of a data-directory backup runs beside the writing of its file trees: only once every
file is read, with the same errors and phases as when it ran after them, and a failure on either
side leaves no backup running on the server."""

from __future__ import annotations

import threading

import pytest

from seawall.errors import PermanentError, RetryableError
from seawall.postgres import datadir_read, pgsession
from seawall.postgres.conn import PgConn
from seawall.postgres.physical import backup_physical
from seawall.streams import ChunkWriter
from seawall.vault import open_vault
from tests.fixtures.postgres import PASSPHRASE, ArchivedCluster


def _failed_manifest(vault, dataset: str):
    (key,) = vault.manifest_keys(dataset)
    return vault.read_manifest_key(key)


def _backups_running(pg) -> int:
    """Sessions other than this one (a non-exclusive backup lives as long as its session)."""
    return pg.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                      "AND pid <> pg_backend_pid()")[0][0]


def test_stop_comes_after_every_file_is_read(pg_archived: ArchivedCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    lock = threading.Lock()
    real_open, real_stop = datadir_read.open_file, pgsession.BackupSession.stop

    def opening(path):
        with lock:
            events.append(f"open {path}")
        return real_open(path)

    def stopping(self):
        with lock:
            events.append("stop")
        return real_stop(self)

    monkeypatch.setattr(datadir_read, "open_file", opening)
    monkeypatch.setattr(pgsession.BackupSession, "stop", stopping)
    vault = open_vault(pg_archived.vault_url, PASSPHRASE)
    manifest = backup_physical(vault, PgConn(pg_archived.cluster.conninfo()), "pg")
    assert manifest.status == "DONE" and manifest.source["stop_lsn"]
    assert events.count("stop") == 1 and events[-1] == "stop"  # no file opened once the backup stopped
    assert events[-2].endswith("global/pg_control")


def test_failing_stop_fails_the_backup_in_its_phase(pg_archived: ArchivedCluster,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def stop(self):
        raise RetryableError("pg_backup_stop on the server: connection lost")

    monkeypatch.setattr(pgsession.BackupSession, "stop", stop)
    vault = open_vault(pg_archived.vault_url, PASSPHRASE)
    with pytest.raises(RetryableError, match="connection lost"):
        backup_physical(vault, PgConn(pg_archived.cluster.conninfo()), "pg")
    failed = _failed_manifest(vault, "pg")
    assert failed.status == "FAILED"
    assert failed.error == "failure pg_backup_stop (pg_backup_stop on the server: connection lost)"
    assert _backups_running(pg_archived.cluster) == 0


def test_failing_tree_write_waits_for_the_stop_and_fails_in_the_read_phase(
        pg_archived: ArchivedCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write, real_stop = ChunkWriter.write, pgsession.BackupSession.stop
    stopped = threading.Event()

    def slow_stop(self):
        result = real_stop(self)
        stopped.set()
        return result

    def write(self, reader, name, **kwargs):
        if kwargs.get("kind") == "tree":
            raise PermanentError("the vault refused the tree")
        return real_write(self, reader, name, **kwargs)

    monkeypatch.setattr(pgsession.BackupSession, "stop", slow_stop)
    monkeypatch.setattr(ChunkWriter, "write", write)
    vault = open_vault(pg_archived.vault_url, PASSPHRASE)
    with pytest.raises(PermanentError, match="refused the tree"):
        backup_physical(vault, PgConn(pg_archived.cluster.conninfo()), "pg")
    assert stopped.is_set()  # the stop had finished before the session closed
    assert _failed_manifest(vault, "pg").error == "failure reading files (the vault refused the tree)"
    assert _backups_running(pg_archived.cluster) == 0
