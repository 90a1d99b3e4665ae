"""The PostgreSQL benchmarks' vault switch (`bench.pg_common.Primary.archive_into`).

pg_phys_bench points one primary's archive at several vaults in turn. A data-directory backup pushes
its own WAL only when the server's last archived file is in its vault (`backup_wal.archives_here`),
else it waits for the archiver (~0.3 s a segment on the bench machine): the odd repetitions'
incrementals waited so, because switching the vault file alone archived nothing into the new vault
(`pg_switch_wal()` on an empty segment is a no-op). `archive_into` must leave the server's last
archived file in the vault it switched to, also when nothing was written since the last switch.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.pg_common import PASSPHRASE, new_vault, start_primary
from seawall.postgres.backup_wal import archives_here
from seawall.postgres.conn import PgConn
from seawall.vault import open_vault

pytestmark = pytest.mark.skipif(shutil.which("pgbackrest") is None, reason="pgbackrest not installed")


def test_archive_into_leaves_the_last_archived_file_in_the_new_vault(pg_workdir: Path) -> None:
    first, second = new_vault(pg_workdir, "vault-a"), new_vault(pg_workdir, "vault-b")
    primary = start_primary(pg_workdir, first)
    try:
        conn = PgConn(primary.conninfo())
        sysid = primary.sql("SELECT system_identifier FROM pg_control_system()")[0][0]
        primary.archive_into(first)
        assert archives_here(open_vault(first, PASSPHRASE), conn, str(sysid))
        for url in (second, first, second):  # back and forth, nothing written in between
            primary.archive_into(url)
            assert archives_here(open_vault(url, PASSPHRASE), conn, str(sysid)), url
    finally:
        primary.cluster.remove()
