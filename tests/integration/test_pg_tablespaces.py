"""Physical backup and PITR of a cluster with a tablespace, relocated with a tablespace map
(issue 16, acceptance point 4), and a tablespace location that is not empty (bad input)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from seawall.checks.verifybackup import verify_base_backup
from seawall.errors import ConfigError
from seawall.postgres import binaries
from seawall.postgres.cluster import LocalCluster
from seawall.postgres.conn import PgConn
from seawall.postgres.physical import backup_physical
from seawall.postgres.recovery import CopyOptions, RecoveryTarget, restore_physical
from seawall.vault import open_vault
from tests.fixtures.postgres import PASSPHRASE, ArchivedCluster, switch_and_archive

CHECKSUM = "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM \"Spaced Tbl\" t"


def _private(path: Path) -> Path:
    path.mkdir()
    binaries.chown_to_server_user(path)
    return path


def test_tablespace_backup_and_pitr_with_a_map(pg_archived: ArchivedCluster, pg_workdir: Path) -> None:
    primary = pg_archived.cluster
    vault = open_vault(pg_archived.vault_url, PASSPHRASE)
    old = _private(pg_workdir / "ts old loc")
    primary.execute(f"CREATE TABLESPACE \"fast ts\" LOCATION '{old}'")
    primary.execute('CREATE TABLE "Spaced Tbl" (id int PRIMARY KEY, v text) TABLESPACE "fast ts"')
    primary.execute('CREATE INDEX "by v" ON "Spaced Tbl" (v) TABLESPACE "fast ts"')
    primary.execute("INSERT INTO \"Spaced Tbl\" SELECT g, md5(g::text) FROM generate_series(1, 5000) g")

    manifest = backup_physical(vault, PgConn(primary.conninfo()), "pg")
    assert [t["location"] for t in manifest.source["tablespaces"]] == [str(old)]
    oid = manifest.source["tablespaces"][0]["oid"]
    assert {s.name for s in manifest.streams} == {"pgdata", f"tablespace-{oid}"}
    (verified,) = verify_base_backup(vault, manifest, workdir=str(pg_workdir))
    assert verified.status == "pass", verified.detail  # pg_verifybackup saw the tablespace's files too
    tarred = backup_physical(vault, PgConn(primary.conninfo()), "pg-bb", method="basebackup")
    assert {s.name for s in tarred.streams} == {"base.tar", f"{oid}.tar", "backup_manifest"}
    (verified,) = verify_base_backup(vault, tarred, workdir=str(pg_workdir))
    assert verified.status == "pass" and "SHA-256" in verified.detail, verified.detail

    primary.execute("INSERT INTO \"Spaced Tbl\" SELECT g, 'after ' || g FROM generate_series(5001, 6000) g")
    time.sleep(0.05)
    at = primary.execute("SELECT clock_timestamp()")[0][0]
    expected = primary.execute(CHECKSUM)[0]
    time.sleep(0.05)
    primary.execute("DELETE FROM \"Spaced Tbl\" WHERE id <= 100")
    switch_and_archive(primary)

    kwargs = {"vault_url": pg_archived.vault_url, "passphrase_file": pg_archived.passphrase_file}
    busy = _private(pg_workdir / "busy")
    (busy / "somebody's file").write_text("x")
    with pytest.raises(ConfigError, match=r"tablespace 'fast ts' location .*busy is not empty"):
        restore_physical(vault, manifest, pg_workdir / "r-bad", target=RecoveryTarget.parse(f"time:{at.isoformat()}"),
                         copy=CopyOptions(tablespace_map={str(old): str(busy)}), **kwargs)
    assert not (pg_workdir / "r-bad").exists() and [p.name for p in busy.iterdir()] == ["somebody's file"]
    with pytest.raises(ConfigError, match=r"location .*ts old loc is not empty"):  # unmapped: the original, in use
        restore_physical(vault, manifest, pg_workdir / "r-bad", **kwargs)

    new = pg_workdir / "ts new loc"
    target = RecoveryTarget.parse(f"time:{at.isoformat()}")
    result = restore_physical(vault, manifest, pg_workdir / "r-ts", target=target,
                              copy=CopyOptions(tablespace_map={str(old): str(new)}), **kwargs)
    copy = LocalCluster(result["datadir"], result["port"], socket_dir=result["socket_dir"])
    try:
        assert copy.execute(CHECKSUM)[0] == expected and expected[0] == 6000
        assert copy.execute("SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'fast ts'") == \
            [(str(new),)]
        assert (Path(result["datadir"]) / "pg_tblspc").iterdir().__next__().resolve() == new.resolve()
        assert copy.execute("SELECT count(*) FROM \"Spaced Tbl\" WHERE v LIKE 'after %'")[0][0] == 1000
    finally:
        copy.stop("immediate")
