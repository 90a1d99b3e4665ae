"""Physical backups and point-in-time restore against real clusters and a real WAL archive.

The primary archives through `seawall wal-push` into a file:// vault (fixture `pg_archived`);
restores fetch WAL through `seawall wal-get`. Covers the issue's PITR acceptance scenario and the
bad inputs: archiving not configured, non-empty data directory, a target before the backup, a lost
WAL segment, and the disk filling during extraction.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from seawall.errors import ConfigError, IntegrityError, NoSpaceError
from seawall.manifest import BackupStatus
from seawall.postgres.cluster import LocalCluster
from seawall.postgres.conn import PgConn
from seawall.postgres.physical import KIND, ArchiverFailing, backup_physical
from seawall.postgres.recovery import RecoveryTarget, restore_physical
from seawall.postgres.wal import WalArchive
from seawall.vault import open_vault
from tests.fixtures.postgres import PASSPHRASE, ArchivedCluster, switch_and_archive


def _vault(pg: ArchivedCluster):
    return open_vault(pg.vault_url, PASSPHRASE)


def _insert(cluster: LocalCluster, tag: str, n: int = 100) -> None:
    cluster.execute("INSERT INTO t (tag, payload) SELECT %s, md5(g::text) FROM generate_series(1, %s) g", (tag, n))


def _restore(pg: ArchivedCluster, manifest, workdir: Path, name: str, target: str, **kwargs) -> dict:
    return restore_physical(_vault(pg), manifest, workdir / name, target=RecoveryTarget.parse(target),
                            vault_url=pg.vault_url, passphrase_file=pg.passphrase_file, **kwargs)


def _tags(result: dict) -> dict[str, int]:
    cluster = LocalCluster(result["datadir"], result["port"], socket_dir=result["socket_dir"])
    try:
        return dict(cluster.execute("SELECT tag, count(*)::int FROM t GROUP BY tag ORDER BY tag"))
    finally:
        cluster.stop("immediate")
        shutil.rmtree(result["datadir"], ignore_errors=True)


@pytest.fixture
def seeded(pg_archived: ArchivedCluster) -> ArchivedCluster:
    pg_archived.cluster.execute("CREATE TABLE t (id bigserial PRIMARY KEY, tag text, payload text)")
    _insert(pg_archived.cluster, "A")
    return pg_archived


def test_pitr_to_restore_point_latest_and_time(seeded: ArchivedCluster, pg_workdir: Path) -> None:
    cluster = seeded.cluster
    manifest = backup_physical(_vault(seeded), PgConn(cluster.conninfo()), "pg-phys")
    assert manifest.status == BackupStatus.DONE and manifest.kind == KIND
    src = manifest.source
    assert src["timeline"] == 1 and src["start_lsn"] and src["stop_lsn"] and src["stop_time"]
    assert src["system_identifier"] == str(cluster.execute("SELECT system_identifier FROM pg_control_system()")[0][0])
    assert src["start_wal_file"] <= src["stop_wal_file"]
    assert "backup_label" in src and "START WAL LOCATION" in src["backup_label"]
    _insert(cluster, "B")
    cluster.execute("SELECT pg_create_restore_point('p1')")
    time.sleep(1.1)
    between = cluster.execute("SELECT clock_timestamp()")[0][0]
    time.sleep(1.1)
    _insert(cluster, "C")
    switch_and_archive(cluster)

    assert _tags(_restore(seeded, manifest, pg_workdir, "r-p1", "name:p1")) == {"A": 100, "B": 100}
    latest = _restore(seeded, manifest, pg_workdir, "r-latest", "latest")
    assert latest["timeline"] == 2 and latest["last_restored_wal"]
    assert _tags(latest) == {"A": 100, "B": 100, "C": 100}
    at_time = _restore(seeded, manifest, pg_workdir, "r-time", f"time:{between.isoformat()}")
    assert "recovery stopping" in (at_time["recovery_stop"] or "")
    assert _tags(at_time) == {"A": 100, "B": 100}


def test_restored_copy_never_archives_and_can_be_left_stopped(seeded: ArchivedCluster, pg_workdir: Path) -> None:
    manifest = backup_physical(_vault(seeded), PgConn(seeded.cluster.conninfo()), "pg-phys")
    result = _restore(seeded, manifest, pg_workdir, "r-stopped", "latest", leave_running=False)
    copy = LocalCluster(result["datadir"], result["port"], socket_dir=result["socket_dir"])
    assert not copy.is_running() and not result["running"]
    conf = (Path(result["datadir"]) / "postgresql.auto.conf").read_text()
    assert "archive_mode = 'off'" in conf and "wal-push" not in conf
    assert "restore_command" not in conf and "recovery_target" not in conf  # nothing dangling once promoted
    copy.start()
    try:
        assert copy.execute("SHOW archive_mode")[0][0] == "off"
        assert copy.execute("SELECT count(*) FROM t")[0][0] == 100
    finally:
        copy.stop("immediate")


def test_backup_refuses_archive_mode_off_and_wal_level_minimal(pg_cluster: LocalCluster, pg_archived) -> None:
    vault = _vault(pg_archived)
    conn = PgConn(pg_cluster.conninfo())
    with pytest.raises(ConfigError, match=r"archive_mode = on .*archive_command = "):
        backup_physical(vault, conn, "pg-phys")
    pg_cluster.execute("ALTER SYSTEM SET wal_level = minimal")
    pg_cluster.execute("ALTER SYSTEM SET max_wal_senders = 0")
    pg_cluster.stop()
    pg_cluster.start()
    with pytest.raises(ConfigError, match=r"wal_level = replica \(is minimal"):
        backup_physical(vault, conn, "pg-phys")
    assert vault.manifest_keys() == []  # nothing written


def test_backup_fails_fast_while_archiving_is_stuck(seeded: ArchivedCluster) -> None:
    cluster = seeded.cluster
    cluster.execute("ALTER SYSTEM SET archive_command = 'false'")
    cluster.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)
    cluster.execute("SELECT pg_switch_wal()")
    deadline = time.monotonic() + 30
    while cluster.execute("SELECT failed_count FROM pg_stat_archiver")[0][0] == 0:
        assert time.monotonic() < deadline, "the archiver never failed"
        time.sleep(0.2)
    with pytest.raises(ArchiverFailing, match=r"WAL archiving .* is failing"):
        backup_physical(_vault(seeded), PgConn(cluster.conninfo()), "pg-phys")


def test_target_time_before_backup_is_refused(seeded: ArchivedCluster, pg_workdir: Path) -> None:
    before = seeded.cluster.execute("SELECT clock_timestamp()")[0][0]
    manifest = backup_physical(_vault(seeded), PgConn(seeded.cluster.conninfo()), "pg-phys")
    with pytest.raises(ConfigError, match="before the oldest point this backup can reach"):
        _restore(seeded, manifest, pg_workdir, "r-early", f"time:{before.isoformat()}")
    assert not (pg_workdir / "r-early").exists()


def test_restore_into_non_empty_dir_touches_nothing(seeded: ArchivedCluster, pg_workdir: Path) -> None:
    manifest = backup_physical(_vault(seeded), PgConn(seeded.cluster.conninfo()), "pg-phys")
    target = pg_workdir / "occupied"
    target.mkdir()
    (target / "keep.txt").write_text("precious")
    with pytest.raises(ConfigError, match="not empty"):
        _restore(seeded, manifest, pg_workdir, "occupied", "latest")
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert (target / "keep.txt").read_text() == "precious"


def test_lost_segment_breaks_pitr_past_it_with_a_clear_error(seeded: ArchivedCluster, pg_workdir: Path) -> None:
    cluster = seeded.cluster
    vault = _vault(seeded)
    manifest = backup_physical(vault, PgConn(cluster.conninfo()), "pg-phys")
    _insert(cluster, "B")
    lost = switch_and_archive(cluster)
    _insert(cluster, "C")
    switch_and_archive(cluster)
    after = cluster.execute("SELECT clock_timestamp()")[0][0]
    _insert(cluster, "D")
    switch_and_archive(cluster)
    vault.store.delete(WalArchive(vault).key(lost))

    with pytest.raises(IntegrityError, match=f"{lost} is missing from the archive"):
        _restore(seeded, manifest, pg_workdir, "r-latest", "latest")
    assert not (pg_workdir / "r-latest").exists()
    with pytest.raises(IntegrityError, match=f"{lost} is missing from the archive"):
        _restore(seeded, manifest, pg_workdir, "r-time", f"time:{after.isoformat()}")
    assert not (pg_workdir / "r-time").exists()


def test_target_after_newest_wal_fails_clearly(seeded: ArchivedCluster, pg_workdir: Path) -> None:
    manifest = backup_physical(_vault(seeded), PgConn(seeded.cluster.conninfo()), "pg-phys")
    switch_and_archive(seeded.cluster)
    with pytest.raises(ConfigError, match="after the newest archived WAL"):
        _restore(seeded, manifest, pg_workdir, "r-future", "time:2999-01-01T00:00:00Z")
    assert not (pg_workdir / "r-future").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_disk_full_during_extraction_removes_the_datadir(seeded: ArchivedCluster, pg_workdir: Path) -> None:
    manifest = backup_physical(_vault(seeded), PgConn(seeded.cluster.conninfo()), "pg-phys")
    mnt = pg_workdir / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0777", "tmpfs", str(mnt)], check=True)
    try:
        with pytest.raises(NoSpaceError, match="no space left"):
            _restore(seeded, manifest, mnt, "data", "latest")
        assert list(mnt.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
