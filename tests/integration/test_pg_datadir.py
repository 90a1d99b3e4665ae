"""Physical backups read from the data directory (issue 18, backup half): full and incremental
backups restored identical, unchanged files never opened, a flipped byte in a checksummed heap page
reported by the CLI with its file and block, and backups from a standby (and its unreachable primary).

Real clusters (initdb --data-checksums, run as the postgres OS user), WAL archived by `seawall
wal-push` into a file:// vault, restores through the existing PITR path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from seawall.errors import ConfigError, ExitCode
from seawall.postgres import binaries, datadir_read, pgpages, pgpages_native
from seawall.postgres.cluster import LocalCluster, free_port, make_private_dir
from seawall.postgres.conn import PgConn
from seawall.postgres.physical import backup_physical, wait_archived
from seawall.postgres.recovery import RecoveryTarget, restore_physical
from seawall.vault import open_vault
from tests.fixtures.postgres import PASSPHRASE, SEAWALL_BIN, ArchivedCluster

WEIRD = '"Ünï cödé ''quoted'' tbl"'
SUMS = f"""SELECT 'big', count(*), md5(string_agg(v, ',' ORDER BY id)) FROM big
           UNION ALL SELECT 'weird', count(*), md5(string_agg(v, ',' ORDER BY id)) FROM {WEIRD}"""


def _restore_immediate(pg: ArchivedCluster, manifest, where: Path) -> LocalCluster:
    result = restore_physical(open_vault(pg.vault_url, PASSPHRASE), manifest, where,
                              target=RecoveryTarget.parse("immediate"), vault_url=pg.vault_url,
                              passphrase_file=pg.passphrase_file)
    return LocalCluster(result["datadir"], result["port"], socket_dir=result["socket_dir"])


@pytest.mark.parametrize("reuse_test", ["c", "python"])  # block reuse: the pages' LSNs read in C, or the block
def test_full_then_incremental_restore_identical_and_unchanged_files_unopened(
        pg_archived: ArchivedCluster, pg_workdir: Path, monkeypatch: pytest.MonkeyPatch, reuse_test: str) -> None:
    if reuse_test == "python":
        monkeypatch.setattr(pgpages_native, "available", lambda: False)
    elif shutil.which("cc"):
        assert pgpages_native.available(), "scripts/setup.sh builds the C page checks where a compiler is"
    pg = pg_archived.cluster
    vault = open_vault(pg_archived.vault_url, PASSPHRASE)
    # initdb's files must be older than the incremental rule's margin when the full backup starts, or
    # they are (rightly) read again: on a quiet machine the fixture is ready well within the margin.
    newest = max(p.stat().st_mtime for p in (Path(pg.datadir) / "base").rglob("*") if p.is_file())
    time.sleep(max(0.0, newest + datadir_read.MTIME_MARGIN_NS / 1e9 + 0.3 - time.time()))
    pg.execute("CREATE TABLE big (id int PRIMARY KEY, v text)")
    pg.execute("INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 60000) g")  # ~5 MB: 5 blocks
    pg.execute(f"CREATE TABLE {WEIRD} (id int, v text)")
    pg.execute(f"INSERT INTO {WEIRD} VALUES (1, 'spaces and ''quotes'' and ünïcode')")
    pg.execute("CREATE UNLOGGED TABLE scratch AS SELECT g FROM generate_series(1, 1000) g")
    pg.execute("VACUUM (FREEZE) big")  # hint bits set now, not by an autovacuum between the two backups
    conn = PgConn(pg.conninfo())

    full = backup_physical(vault, conn, "pg")
    assert full.source["method"] == "datadir" and full.parent is None and not full.source.get("page_errors")
    assert {s.name for s in full.streams} == {"pgdata"} and full.source["pages_checked"] > 100
    assert "START WAL LOCATION" in full.source["backup_label"]

    pg.execute("UPDATE big SET v = 'changed' WHERE id > 59000")  # the table's last pages only
    pg.execute(f"INSERT INTO {WEIRD} VALUES (2, 'after the full backup')")
    expected = pg.execute(SUMS)
    opened: list[str] = []
    real_open = datadir_read.open_file
    monkeypatch.setattr(datadir_read, "open_file", lambda path: (real_open(path), opened.append(path))[0])

    pg.execute("CREATE TABLE churn (id serial PRIMARY KEY, v text)")
    stop, rounds = threading.Event(), []

    def writer() -> None:  # pages change while the incremental reads them: replay must fix what it copied
        while not stop.is_set():
            pg.execute("INSERT INTO churn (v) SELECT md5(g::text) FROM generate_series(1, 500) g")
            pg.execute("UPDATE churn SET v = v || 'x' WHERE id % 7 = 0")
            rounds.append(1)

    churn = threading.Thread(target=writer)
    churn.start()
    try:
        incr = backup_physical(vault, conn, "pg", compress_level=0)  # its new blocks stored uncompressed
    finally:
        stop.set()
        churn.join()
    assert rounds and incr.parent == full.backup_id, incr.source["reuse"]
    assert (full.source["compress_level"], incr.source["compress_level"]) == (1, 0)
    assert incr.stats.stored_bytes_new >= incr.stats.bytes_new  # nothing compressed (sealing adds a few bytes)
    big_file = pg.execute("SELECT pg_relation_filepath('big')")[0][0]
    catalog_file = pg.execute("SELECT pg_relation_filepath('pg_am')")[0][0]  # never written after initdb
    opened_rel = {os.path.relpath(p, pg.datadir) for p in opened}
    assert big_file in opened_rel and catalog_file not in opened_rel
    assert incr.stats.files_unchanged > 500 and len(opened) == incr.source["files_read"] < full.source["files_read"]
    assert incr.source["blocks_reused"] >= 3  # big's first blocks: pages untouched since the full backup
    # The backups pushed their own WAL; the archiver's later push of the same segments is no conflict.
    assert full.source["wal_pushed_by_backup"] and incr.source["wal_pushed_by_backup"]
    segment = pg.execute("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
    wait_archived(conn, segment, timeout=60)
    assert pg.execute("SELECT failed_count FROM pg_stat_archiver") == [(0,)]

    copy = _restore_immediate(pg_archived, incr, pg_workdir / "r-incr")
    try:
        assert copy.execute(SUMS) == expected
        assert copy.execute("SELECT count(*) FROM scratch") == [(0,)]  # unlogged: restored empty
        check = binaries.run([binaries.tool("pg_amcheck"), "-h", str(copy.socket_dir), "-p", str(copy.port),
                              "-U", "postgres", "--install-missing", "--heapallindexed", "--all"], check=False)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        copy.stop("immediate")


def _flip_byte(cluster: LocalCluster, relpath: str, offset: int) -> None:
    with open(cluster.datadir / relpath, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("checks", ["c", "numpy"])
def test_flipped_byte_in_a_heap_page_is_reported_with_file_and_block(pg_archived: ArchivedCluster,
                                                                     checks: str) -> None:
    pg = pg_archived.cluster
    pg.execute("CREATE TABLE victim (id int, v text)")
    pg.execute("INSERT INTO victim SELECT g, repeat('x', 100) FROM generate_series(1, 500) g")  # ~8 pages
    relpath = pg.execute("SELECT pg_relation_filepath('victim')")[0][0]
    pg.execute("CHECKPOINT")
    pg.stop()
    pages = (Path(pg.datadir) / relpath).read_bytes()
    _flip_byte(pg, relpath, 3 * 8192 + 5000)  # inside block 3's tuples
    pg.start()
    # Both implementations agree with the server on its own pages, before and after the flip.
    flipped = bytearray(pages)
    flipped[3 * 8192 + 5000] ^= 0xFF
    for impl in (pgpages.bad_pages_numpy, *([pgpages_native.bad_pages] if pgpages_native.available() else [])):
        assert impl(pages, 0, 1 << 62) == [] and impl(bytes(flipped), 0, 1 << 62) == [3]
    if checks == "c" and shutil.which("cc"):
        assert pgpages_native.available(), "scripts/setup.sh builds the C page checks where a compiler is"

    env = dict(os.environ, SEAWALL_PASSPHRASE=PASSPHRASE, SEAWALL_PGCHECKSUM=checks)
    argv = [SEAWALL_BIN, "backup", "postgres", "--dsn", pg.conninfo(), "--mode", "physical",
            "--vault", pg_archived.vault_url, "--dataset", "pg-ck"]
    run = subprocess.run([*argv, "--json"], env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    (error,) = json.loads(run.stdout)["source"]["page_errors"]
    assert (error["file"], error["block"], error["relation"]) == (relpath, 3, "postgres: victim")
    assert error["checksum_found"] != error["checksum_expected"]
    # The next (incremental) backup does not read the unchanged file again, and still says so.
    run = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    assert f"page checksum failure: {relpath} (relation postgres: victim) block 3" in " ".join(run.stdout.split())


def _standby_of(primary: LocalCluster, base: Path) -> LocalCluster:
    root = make_private_dir("standby-", str(base))
    sock = root / "sock"
    sock.mkdir()
    binaries.chown_to_server_user(sock)
    standby = LocalCluster(root / "data", free_port(), socket_dir=str(sock))
    binaries.run([binaries.tool("pg_basebackup"), "-D", str(standby.datadir), "-d", primary.conninfo(),
                  "-X", "stream", "-R", "-c", "fast"])
    standby.configure({"port": standby.port, "unix_socket_directories": str(sock)})
    standby.start()
    return standby


def test_backup_from_a_standby_and_its_unreachable_primary(pg_archived: ArchivedCluster, pg_workdir: Path) -> None:
    pg = pg_archived.cluster
    pg.execute("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 2000) g")
    standby = _standby_of(pg, pg_workdir)
    try:
        pg.execute("INSERT INTO t VALUES (0, 'streamed')")
        lsn = pg.execute("SELECT pg_current_wal_lsn()")[0][0]
        standby.execute("SELECT 1")
        for _ in range(300):
            if standby.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,))[0][0]:
                break
            time.sleep(0.1)
        vault = open_vault(pg_archived.vault_url, PASSPHRASE)
        manifest = backup_physical(vault, PgConn(standby.conninfo()), "pg-standby")
        assert manifest.source["from_standby"] and "BACKUP FROM: standby" in manifest.source["backup_label"]
        copy = _restore_immediate(pg_archived, manifest, pg_workdir / "r-standby")
        try:
            assert copy.execute("SELECT count(*), max(v) FILTER (WHERE id = 0) FROM t") == [(2001, "streamed")]
        finally:
            copy.stop("immediate")

        pg.stop()
        with pytest.raises(ConfigError, match=r"the primary of standby .* cannot be reached"):
            backup_physical(vault, PgConn(standby.conninfo()), "pg-standby")
        env = dict(os.environ, SEAWALL_PASSPHRASE=PASSPHRASE)
        run = subprocess.run([SEAWALL_BIN, "backup", "postgres", "--dsn", standby.conninfo(), "--mode", "physical",
                              "--vault", pg_archived.vault_url], env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == ExitCode.USAGE, run.stdout + run.stderr
        assert f"port={pg.port}" in run.stdout + run.stderr and "Traceback" not in run.stderr
    finally:
        standby.remove()
