"""`restore --standby`: a standby fed from the archive alone keeps up with a writing primary and
promotes, then archives its own timeline into the vault (issue 16, acceptance point 3)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from seawall.errors import ConfigError
from seawall.postgres.cluster import LocalCluster
from seawall.postgres.conn import PgConn
from seawall.postgres.physical import backup_physical, wait_archived
from seawall.postgres.recovery import CopyOptions, RecoveryTarget, restore_physical
from seawall.postgres.wal import WalArchive
from seawall.vault import open_vault
from tests.fixtures.postgres import PASSPHRASE, ArchivedCluster


def wait_for(condition, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def test_archive_fed_standby_keeps_up_and_promotes(pg_archived: ArchivedCluster, pg_workdir: Path) -> None:
    primary = pg_archived.cluster
    vault = open_vault(pg_archived.vault_url, PASSPHRASE)
    primary.execute("CREATE TABLE t (id bigserial PRIMARY KEY, round int)")
    manifest = backup_physical(vault, PgConn(primary.conninfo()), "pg")

    result = restore_physical(vault, manifest, pg_workdir / "standby", vault_url=pg_archived.vault_url,
                              passphrase_file=pg_archived.passphrase_file,
                              copy=CopyOptions(standby=True, archive=True))
    standby = LocalCluster(result["datadir"], result["port"], socket_dir=result["socket_dir"])
    try:
        assert result["mode"] == "standby" and standby.execute("SELECT pg_is_in_recovery()")[0][0]
        assert (standby.datadir / "standby.signal").exists()
        conf = (standby.datadir / "postgresql.auto.conf").read_text()
        assert "wal-get %f %p" in conf and ".walspool" not in conf.split("restore_command")[-1]
        assert standby.execute("SHOW primary_conninfo")[0][0] == ""  # the archive alone
        # Poll the archive more often than the default 5 s, so the test waits less (a user's knob too).
        standby.execute("ALTER SYSTEM SET wal_retrieve_retry_interval = '200ms'")
        standby.execute("SELECT pg_reload_conf()")

        for round_ in range(3):  # the primary keeps writing; the standby follows segment by segment
            primary.execute("INSERT INTO t (round) SELECT %s FROM generate_series(1, 200)", (round_,))
            segment = primary.execute("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
            wait_archived(PgConn(primary.conninfo()), segment, timeout=60)
            wait_for(lambda r=round_: standby.execute("SELECT count(*) FROM t WHERE round = %s", (r,))[0][0] == 200,
                     f"round {round_} on the standby")

        primary.stop()
        standby.promote()
        standby.wait_ready(writable=True)
        standby.execute("INSERT INTO t (round) VALUES (99)")
        assert standby.execute("SELECT count(*) FROM t")[0][0] == 601
        archive = WalArchive(vault)
        wait_for(lambda: "00000002.history" in archive.names(), "the promoted standby's history file")
        new = standby.execute("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
        wait_for(lambda: new in archive.names(), f"{new} archived by the promoted standby")
    finally:
        standby.stop("immediate")


def test_standby_takes_no_target_and_no_password_in_primary_conninfo(pg_archived: ArchivedCluster,
                                                                    pg_workdir: Path) -> None:
    vault = open_vault(pg_archived.vault_url, PASSPHRASE)
    manifest = backup_physical(vault, PgConn(pg_archived.conninfo), "pg")
    kwargs = {"vault_url": pg_archived.vault_url, "passphrase_file": pg_archived.passphrase_file}
    with pytest.raises(ConfigError, match="a standby follows the archive to its end"):
        restore_physical(vault, manifest, pg_workdir / "s1", target=RecoveryTarget.parse("immediate"),
                         copy=CopyOptions(standby=True), **kwargs)
    with pytest.raises(ConfigError, match="must not hold a password"):
        restore_physical(vault, manifest, pg_workdir / "s2",
                         copy=CopyOptions(standby=True, primary_conninfo="host=x password=secret"), **kwargs)
    assert not (pg_workdir / "s1").exists() and not (pg_workdir / "s2").exists()


def test_streaming_standby_with_primary_conninfo(pg_archived: ArchivedCluster, pg_workdir: Path) -> None:
    primary = pg_archived.cluster
    vault = open_vault(pg_archived.vault_url, PASSPHRASE)
    primary.execute("CREATE TABLE s (i int)")
    manifest = backup_physical(vault, PgConn(primary.conninfo()), "pg")
    result = restore_physical(vault, manifest, pg_workdir / "streaming", vault_url=pg_archived.vault_url,
                              passphrase_file=pg_archived.passphrase_file,
                              copy=CopyOptions(standby=True, primary_conninfo=primary.conninfo()))
    standby = LocalCluster(result["datadir"], result["port"], socket_dir=result["socket_dir"])
    try:
        wait_for(lambda: standby.execute("SELECT status FROM pg_stat_wal_receiver") == [("streaming",)],
                 "the standby to stream from the primary")
        primary.execute("INSERT INTO s SELECT generate_series(1, 100)")  # no segment switch: streamed, not archived
        wait_for(lambda: standby.execute("SELECT count(*) FROM s")[0][0] == 100, "streamed rows")
        assert standby.execute("SHOW archive_mode")[0][0] == "off"  # not asked to archive once promoted
    finally:
        standby.stop("immediate")
