"""A physical backup taken while pgbench writes, then PITR to a recorded time (issue 16, acceptance
point 5): `pg_dumpall --data-only` of the source at that time and of the copy are identical, and
`pg_amcheck --heapallindexed` finds nothing on the copy."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from seawall.postgres import binaries
from seawall.postgres.cluster import LocalCluster
from seawall.postgres.conn import PgConn
from seawall.postgres.physical import backup_physical
from seawall.postgres.recovery import RecoveryTarget, restore_physical
from seawall.vault import open_vault
from tests.fixtures.postgres import PASSPHRASE, ArchivedCluster, switch_and_archive


def _pgbench(cluster: LocalCluster, *args: str) -> subprocess.Popen:
    argv = [binaries.tool("pgbench"), "-h", str(cluster.socket_dir), "-p", str(cluster.port), "-U", "postgres",
            *args, "postgres"]
    return binaries.popen(argv, as_server_user=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _dumpall(cluster: LocalCluster) -> str:
    argv = [binaries.tool("pg_dumpall"), "--data-only", "--restrict-key=seawall", "-h", str(cluster.socket_dir),
            "-p", str(cluster.port), "-U", "postgres"]
    return binaries.run(argv, as_server_user=False).stdout


def test_backup_under_pgbench_then_pitr_to_a_recorded_time(pg_archived: ArchivedCluster, pg_workdir: Path) -> None:
    primary = pg_archived.cluster
    vault = open_vault(pg_archived.vault_url, PASSPHRASE)
    init = _pgbench(primary, "-i", "-s", "2", "-q")
    assert init.wait(timeout=300) == 0, init.stdout.read()

    load = _pgbench(primary, "-c", "2", "-j", "1", "-T", "600", "-R", "150", "-n")
    try:
        time.sleep(1)  # the load is running before the backup starts
        manifest = backup_physical(vault, PgConn(primary.conninfo()), "pg-bench")
        time.sleep(1)  # and goes on after it
        assert load.poll() is None, load.stdout.read()
    finally:
        load.terminate()
        load.wait(timeout=60)
    time.sleep(0.05)
    at = primary.execute("SELECT clock_timestamp()")[0][0]
    expected = _dumpall(primary)
    time.sleep(0.05)
    more = _pgbench(primary, "-c", "1", "-t", "200", "-n")
    assert more.wait(timeout=300) == 0
    switch_and_archive(primary)

    result = restore_physical(vault, manifest, pg_workdir / "copy",
                              target=RecoveryTarget.parse(f"time:{at.isoformat()}"),
                              vault_url=pg_archived.vault_url, passphrase_file=pg_archived.passphrase_file)
    copy = LocalCluster(result["datadir"], result["port"], socket_dir=result["socket_dir"])
    try:
        assert _dumpall(copy) == expected
        assert _dumpall(primary) != expected  # the later pgbench run changed the source: the check can fail
        amcheck = binaries.run([binaries.tool("pg_amcheck"), "--all", "--install-missing", "--heapallindexed",
                                "-h", str(copy.socket_dir), "-p", str(copy.port), "-U", "postgres"],
                               as_server_user=False, check=False)
        assert amcheck.returncode == 0 and not amcheck.stdout.strip(), amcheck.stdout + amcheck.stderr
    finally:
        copy.stop("immediate")
