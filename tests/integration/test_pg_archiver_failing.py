"""A physical backup whose archiver is failing ends in seconds with one line naming the failing file.

Before: the backup waited `archive_wait` (300 s) for its stop segment while the archiver failed on
it, and an archiver already failing at the start was a RetryableError, so the CLI retried the whole
backup four times, 10-80 s apart. Now the stop-segment wait ends once the archiver has failed
`ARCHIVE_TRIES` times since the backup began (`seawall.postgres.archiver`), a failing archiver is
not retried, and the wait's default is 60 s (pgBackRest's archive-timeout).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from seawall.crypto import ScryptParams
from seawall.manifest import BackupStatus
from seawall.postgres.archiver import ARCHIVE_WAIT, ArchiverFailing
from seawall.postgres.cluster import LocalCluster, make_private_dir
from seawall.postgres.conn import PgConn
from seawall.postgres.physical import backup_physical
from seawall.vault import init_vault, open_vault
from tests.fixtures.postgres import PASSPHRASE, SEAWALL_BIN, ArchivedCluster


def _break_archiving(cluster: LocalCluster) -> None:
    """archive_command fails from now on; no segment is due, so the archiver has not failed yet."""
    cluster.execute("ALTER SYSTEM SET archive_command = 'false'")
    cluster.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)
    assert cluster.execute("SELECT failed_count FROM pg_stat_archiver")[0][0] == 0


def _failed_wal(cluster: LocalCluster) -> str:
    return cluster.execute("SELECT last_failed_wal FROM pg_stat_archiver")[0][0]


def test_archiver_failing_on_the_stop_segment_ends_the_backup_in_seconds(pg_archived: ArchivedCluster,
                                                                         pg_workdir: Path) -> None:
    assert ARCHIVE_WAIT == 60
    cluster = pg_archived.cluster
    cluster.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g")
    _break_archiving(cluster)
    # A vault the archiver never wrote to: the backup cannot push its WAL itself, so it waits for the
    # archiver (`backup_wal.archives_here`), which fails on the segment the backup's stop switched out.
    url = f"file://{make_private_dir('vault-other-', str(pg_workdir))}"
    init_vault(url, PASSPHRASE, scrypt=ScryptParams(n=2**12))
    vault = open_vault(url, PASSPHRASE)
    started = time.monotonic()
    try:
        backup_physical(vault, PgConn(cluster.conninfo()), "pg-phys")
        raise AssertionError("the backup completed without its WAL")
    except ArchiverFailing as exc:
        message = str(exc)
    took = time.monotonic() - started
    assert took < 30, f"took {took:.0f}s"
    assert f"is failing on {_failed_wal(cluster)}" in message and "\n" not in message, message
    (manifest,) = vault.list_backups()
    assert manifest.status == BackupStatus.FAILED


def test_cli_backup_with_a_failing_archiver_is_one_line_and_not_retried(pg_archived: ArchivedCluster) -> None:
    cluster = pg_archived.cluster
    _break_archiving(cluster)
    cluster.execute("SELECT pg_switch_wal()")
    deadline = time.monotonic() + 30
    while cluster.execute("SELECT failed_count FROM pg_stat_archiver")[0][0] == 0:
        assert time.monotonic() < deadline, "the archiver never failed"
        time.sleep(0.2)
    started = time.monotonic()
    result = subprocess.run([SEAWALL_BIN, "backup", "postgres", "--dsn", pg_archived.conninfo, "--mode", "physical",
                             "--vault", pg_archived.vault_url, "--passphrase-file", str(pg_archived.passphrase_file)],
                            capture_output=True, text=True, timeout=300)
    took = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert "WAL archiving on " in lines[0] and f"is failing: {_failed_wal(cluster)} failed at" in lines[0], lines
    assert "retry" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert took < 9, f"took {took:.0f}s (a retried task waits 10 s first)"
