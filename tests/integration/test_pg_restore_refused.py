"""A restored server that will never let the restore in ends the restore at once, not after an hour.

A restore waits for its copy to reach the target (`recovery_modes.wait_for_end`, timeout one hour).
Two ways that wait used to run the whole hour: the copy's postmaster died but stayed a zombie (PID 1
of this machine, like some container inits, never reaps the orphans pg_ctl leaves it), so it still
looked alive; or the copy runs and says it accepts connections, but refuses seawall's (the backup's
pg_hba.conf rejects local connections). Both now end in seconds with one line naming the data
directory and the server log.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from seawall.postgres.cluster import LocalCluster, free_port
from seawall.postgres.recovery_modes import ServerStopped, wait_for_end
from tests.fixtures.postgres import SEAWALL_BIN, ArchivedCluster, switch_and_archive


def _cli(pg: ArchivedCluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SEAWALL_BIN, *args, "--vault", pg.vault_url, "--passphrase-file", str(pg.passphrase_file)],
                          capture_output=True, text=True, timeout=300)


def test_restore_of_a_copy_that_refuses_us_fails_fast_naming_it(pg_archived: ArchivedCluster,
                                                                pg_workdir: Path) -> None:
    primary = pg_archived.cluster
    # Into the file, not into the running primary (no reload): the backup carries a pg_hba.conf that
    # rejects every local connection, so the restored copy will, while the primary still lets us in.
    hba = primary.datadir / "pg_hba.conf"
    hba.write_text("local all all reject\n" + hba.read_text())
    done = _cli(pg_archived, "backup", "postgres", "--dsn", pg_archived.conninfo, "--mode", "physical",
                "--dataset", "db", "--json")
    assert done.returncode == 0, done.stderr
    switch_and_archive(primary)
    datadir = pg_workdir / "copy" / "data"
    started = time.monotonic()
    result = _cli(pg_archived, "restore", json.loads(done.stdout)["backup_id"], "--to-datadir", str(datadir),
                  "--port", str(free_port()), "--target", "immediate", "--no-archive")
    took = time.monotonic() - started
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert "refuses seawall's connection" in lines[0] and str(datadir) in lines[0], result.stderr
    assert "server log: " in lines[0] and "Traceback" not in result.stderr
    assert took < 60, f"took {took:.0f}s"
    copy = LocalCluster(datadir, socket_dir=str(datadir.parent / "data.sock"))
    assert not copy.is_running()


def test_a_dead_unreaped_postmaster_is_not_waited_for(tmp_path: Path) -> None:
    pid = os.fork()
    if pid == 0:  # the "postmaster": exits at once, and nobody reaps it until the end of the test
        os._exit(0)
    try:
        datadir = tmp_path / "data"
        datadir.mkdir()
        time.sleep(0.2)
        # postmaster.pid as PostgreSQL 15 writes it: line 8 is the status ("ready": accepting)
        lines = [str(pid), str(datadir), "0", "5432", str(tmp_path), "localhost", "0 0", "ready"]
        (datadir / "postmaster.pid").write_text("\n".join(lines) + "\n")
        cluster = LocalCluster(datadir, free_port(), socket_dir=str(tmp_path))
        assert Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
        assert not cluster.is_running()
        started = time.monotonic()
        with pytest.raises(ServerStopped):
            wait_for_end(cluster, "promote", timeout=3600, grace=1)
        assert time.monotonic() - started < 5
    finally:
        os.waitpid(pid, 0)
