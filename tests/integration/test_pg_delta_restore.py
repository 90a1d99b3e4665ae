"""Parallel (`-j`) and `--delta` physical restores with the CLI as users run it, on real PostgreSQL 15.

One primary archiving into a vault (module scope: the steps build on each other and cost seconds
each): a backup is restored with `-j 4` (same data as the primary: `pg_dumpall --data-only` equal,
`pg_amcheck --heapallindexed` clean); the primary then changes (rows updated, a table dropped, one
created, names with quotes, spaces and unicode) and the next backup is restored `--delta` into that
stopped copy: the data equals the primary's again while only the changed files were written, and the
files untouched since the first restore (its hints) were not even read, but a byte changed behind an
unchanged size and mtime was still found. A delta
into a running cluster and into another cluster's data directory is refused with exit 2, untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from seawall.crypto import ScryptParams
from seawall.postgres import binaries
from seawall.postgres.cluster import LocalCluster, free_port, make_private_dir
from seawall.vault import init_vault
from tests.fixtures.postgres import PASSPHRASE, SEAWALL_BIN, ArchivedCluster, _private_file

WEIRD = 'naïve "quoted" table ☃'
TABLE = '"' + WEIRD.replace('"', '""') + '"'  # as an SQL identifier


@pytest.fixture(scope="module")
def primary() -> Iterator[ArchivedCluster]:
    workdir = make_private_dir("seawall-test-delta-")
    vault_url = f"file://{make_private_dir('vault-', str(workdir))}"
    pass_file = _private_file(workdir / "passphrase", PASSPHRASE)
    init_vault(vault_url, PASSPHRASE, scrypt=ScryptParams(n=2**12))
    cluster = LocalCluster.create(workdir, settings={
        "archive_mode": "on", "archive_command": f"{SEAWALL_BIN} wal-push %p --vault {vault_url} "
                                                 f"--passphrase-file {pass_file}",
        "wal_level": "replica", "max_wal_size": "256MB"})
    cluster.start()
    cluster.execute(f'CREATE TABLE {TABLE} (id int PRIMARY KEY, "a b" text)')
    cluster.execute(f"INSERT INTO {TABLE} SELECT g, 'row ' || g || ' ünïcödé ''q''' "
                    "FROM generate_series(1, 20000) g")
    cluster.execute("CREATE TABLE gone (x int); INSERT INTO gone SELECT generate_series(1, 1000)")
    for n in range(12):  # tables that do not change: their files must not be written by the delta
        cluster.execute(f"CREATE TABLE still_{n} AS SELECT g, md5(g::text) m FROM generate_series(1, 3000) g")
    cluster.execute("CHECKPOINT")
    yield ArchivedCluster(cluster, vault_url, pass_file)
    cluster.remove()
    shutil.rmtree(workdir, ignore_errors=True)


def cli(pg: ArchivedCluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SEAWALL_BIN, *args, "--vault", pg.vault_url, "--passphrase-file", str(pg.passphrase_file)],
                          capture_output=True, text=True, timeout=300)


def backup(pg: ArchivedCluster) -> str:
    done = cli(pg, "backup", "postgres", "--dsn", pg.conninfo, "--mode", "physical", "--dataset", "db", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["backup_id"]


def restore(pg: ArchivedCluster, backup_id: str, datadir: Path, *extra: str) -> subprocess.CompletedProcess:
    return cli(pg, "restore", backup_id, "--to-datadir", str(datadir), "--port", str(free_port()), "--target",
               "immediate", "--no-archive", "--json", *extra)


def dump(cluster: LocalCluster) -> bytes:
    out = subprocess.run([binaries.tool("pg_dumpall"), "-d", cluster.conninfo(), "--data-only",
                          "--restrict-key=seawalltest"],
                         capture_output=True, check=True)
    return out.stdout


def amcheck(cluster: LocalCluster) -> subprocess.CompletedProcess:
    return subprocess.run([binaries.tool("pg_amcheck"), "-h", str(cluster.socket_dir), "-p", str(cluster.port),
                           "-U", "postgres", "--all", "--heapallindexed", "--install-missing"],
                          capture_output=True, text=True)


def copy_of(result: subprocess.CompletedProcess) -> LocalCluster:
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    return LocalCluster(info["datadir"], info["port"], socket_dir=info["socket_dir"])


@pytest.fixture(scope="module")
def first(primary: ArchivedCluster) -> Iterator[tuple[str, LocalCluster, bytes]]:
    """The first backup, restored with -j 4 (left stopped), and the primary's data at that backup."""
    backup_id = backup(primary)
    expected = dump(primary.cluster)
    copy = copy_of(restore(primary, backup_id, primary.cluster.datadir.parent / "copy" / "data", "-j", "4"))
    yield backup_id, copy, expected
    if copy.is_running():
        copy.stop("immediate")


def test_parallel_restore_is_identical(first) -> None:
    _, copy, expected = first
    assert dump(copy) == expected
    check = amcheck(copy)
    assert check.returncode == 0, check.stdout + check.stderr
    copy.stop()


def test_delta_restore_after_changes_is_identical_and_writes_only_changed_files(primary, first) -> None:
    _, copy, _ = first
    if copy.is_running():
        copy.stop()
    primary.cluster.execute(f'UPDATE {TABLE} SET "a b" = "a b" || \' (changed)\' WHERE id % 100 = 0')
    primary.cluster.execute("DROP TABLE gone; CREATE TABLE fresh AS SELECT generate_series(1, 500) x")
    primary.cluster.execute("CHECKPOINT")
    second = backup(primary)
    expected = dump(primary.cluster)
    # A byte changed with the size and mtime put back (what --delta-trust-mtime cannot see) in a file
    # the server leaves alone and the full restore's hints know: its new ctime must send it to the
    # compare. Left as is, the server would refuse to start (the map has a CRC).
    fooled = copy.datadir / "global" / "pg_filenode.map"
    st = fooled.stat()
    with open(fooled, "r+b") as fh:
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(fooled, ns=(st.st_atime_ns, st.st_mtime_ns))
    done = restore(primary, second, copy.datadir, "--delta")
    delta = json.loads(done.stdout)["files"] if done.returncode == 0 else {}
    restored = copy_of(done)
    try:
        assert dump(restored) == expected
        check = amcheck(restored)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        restored.stop()
    # the unchanged tables (12 x heap, fsm, vm...) and most of the catalog were left as they were
    assert 0 < delta["files_written"] < delta["files"] // 4, delta
    assert delta["removed"] >= 1 and delta["bytes_fetched"] < delta["bytes"] // 2, delta  # 1 MiB chunks
    # files the copy's server did not touch since the full restore were known without reading them
    assert delta["files_hinted"] > delta["files"] // 2 and delta["bytes_compared"] < delta["bytes"], delta


def test_delta_refuses_a_running_cluster(primary, first) -> None:
    backup_id = first[0]
    before = sorted(os.listdir(primary.cluster.datadir))
    refused = restore(primary, backup_id, primary.cluster.datadir, "--delta")
    assert refused.returncode == 2, refused.stderr
    assert f"PostgreSQL is running on {primary.cluster.datadir}" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert primary.cluster.is_running() and sorted(os.listdir(primary.cluster.datadir)) == before


def test_delta_refuses_another_clusters_data_directory(primary, first) -> None:
    other = LocalCluster.create(primary.cluster.datadir.parent)  # initdb: another system identifier
    try:
        marker = other.datadir / "PG_VERSION"
        before = marker.read_bytes()
        refused = restore(primary, first[0], other.datadir, "--delta")
        assert refused.returncode == 2, refused.stderr
        assert f"{other.datadir} is the data directory of another cluster" in refused.stderr
        assert "--force" in refused.stderr and marker.read_bytes() == before
    finally:
        shutil.rmtree(other.datadir.parent, ignore_errors=True)
