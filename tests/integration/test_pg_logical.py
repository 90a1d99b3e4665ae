"""Logical PostgreSQL backups against real clusters: round trip, deduplication, spool use, bad input.

Everything is real: a throwaway cluster from the Debian server binaries, the datagen shop database,
pg_dump/pg_restore, and a LocalStore vault with small chunks so a few MB exercise deduplication.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from seawall.errors import AuthError, ConfigError, IntegrityError, PermanentError, RetryableError
from seawall.manifest import BackupStatus
from seawall.postgres.cluster import LocalCluster, free_port
from seawall.postgres.conn import PgConn
from seawall.postgres.datagen import TABLES, generate, mutate
from seawall.postgres.logical import backup_logical
from seawall.postgres.logical_restore import restore_logical, verify_tables
from seawall.postgres.tablestats import schema_facts, table_stats
from seawall.vault import Vault, init_vault
from tests.unit.builders import FAST_SCRYPT, PASSPHRASE, SMALL_CHUNKER

SCALE_MB = 8

#: Values that stress COPY text: newlines, tabs, backslashes, a line that reads `\.`, empty strings,
#: NULLs, special floats and numerics, time zones, intervals, arrays with NULL, unicode, bytea.
EDGE_SQL = r"""
CREATE TABLE edge (id int PRIMARY KEY, t text, f float8, n numeric, ts timestamptz, iv interval,
  arr text[], b bytea, j jsonb, twice int GENERATED ALWAYS AS (id * 2) STORED);
INSERT INTO edge VALUES
 (1, E'line1\nline2\ttab\\back', 'NaN', 'NaN', '2024-03-01 12:00:00+05:30', '1 day 02:03:04',
  ARRAY['a', NULL, 'c d'], '\x00ff5c2e0a', '{"k": "v\n", "n": 1.50}'),
 (2, E'\\.', '-0', 0.1, 'infinity', '-1 mon', '{}', '', 'null'),
 (3, '', 'Infinity', 123456789.123456789, '1999-12-31 23:59:59.999999+00', '0', NULL, NULL, '[]'),
 (4, E'\\.\n\\.', 1e-300, -0.00, NULL, NULL, ARRAY[E'x\ty'], '\x5c', '{"\u00e9": "ü 中"}'),
 (5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"""


def make_vault(workdir: Path, name: str = "vault") -> Vault:
    path = workdir / name
    path.mkdir()
    return init_vault(f"file://{path}", PASSPHRASE, scrypt=FAST_SCRYPT, chunker=SMALL_CHUNKER)


def create_db(cluster: LocalCluster, name: str) -> PgConn:
    cluster.execute(f'CREATE DATABASE "{name}"')
    return PgConn(cluster.conninfo(name))


@pytest.fixture
def shop(pg_cluster: LocalCluster) -> PgConn:
    """A datagen shop database plus the `edge` table, on the test cluster."""
    conn = create_db(pg_cluster, "shop")
    generate(conn, SCALE_MB, seed=1)
    pg_cluster.execute(EDGE_SQL, dbname="shop")
    return conn


def current_schema(conn: PgConn) -> tuple[dict, dict]:
    with conn.connect() as pg:
        return schema_facts(pg)


# ---- round trip -----------------------------------------------------------------------------------


def test_round_trip_restores_schema_rows_and_checksums(shop: PgConn, pg_cluster: LocalCluster,
                                                        pg_workdir: Path) -> None:
    vault = make_vault(pg_workdir)
    manifest = backup_logical(vault, shop, "shop", jobs=2)

    assert manifest.status == BackupStatus.DONE and manifest.kind == "postgres-logical"
    source = manifest.source
    assert source["dbname"] == "shop" and source["system_identifier"] and source["snapshot"]
    tables = source["tables"]
    assert set(tables) == {f"public.{t}" for t in (*TABLES, "edge")}
    assert tables["public.edge"]["rows"] == 5
    assert [c[0] for c in tables["public.edge"]["columns"]][-1] == "twice"  # schema lists generated columns
    # The source is untouched since generation, so its heap order is the dump's order: same figures.
    live = table_stats(shop, list(tables))
    assert {t: (v["rows"], v["checksum"]) for t, v in tables.items()} == \
        {t: (v["rows"], v["checksum"]) for t, v in live.items()}

    target = PgConn(pg_cluster.conninfo("shop_restored"))
    checks = restore_logical(vault, manifest, target, jobs=2)

    assert len(checks) == len(tables) and all(c.ok for c in checks)
    columns, indexes = current_schema(target)
    assert columns == {t: v["columns"] for t, v in tables.items()}
    assert indexes == source["indexes"]
    assert pg_cluster.execute("SELECT t, twice FROM edge WHERE id = 4", dbname="shop_restored") == [("\\.\n\\.", 8)]


def test_spool_streams_files_while_pg_dump_runs(shop: PgConn, pg_cluster: LocalCluster, pg_workdir: Path) -> None:
    # ~22 MB more than the shop's ~4.6 MB dump: with only the shop, pg_dump -j 2 could write every
    # file between two of the spool's 50 ms polls on a busy machine and exit before any file was
    # stored (streamed_early 0 in a full CI run). Now it must be paused (SIGSTOP) many times, and
    # it cannot finish before the readers have taken ~20 MB, long after the first files closed.
    for name in ("bulk_a", "bulk_b"):
        pg_cluster.execute(f"CREATE TABLE {name} AS SELECT g AS id, md5(g::text) || md5((g + 1)::text) AS t "
                           "FROM generate_series(1, 150000) g", dbname="shop")
    spool = pg_workdir / "spool"
    spool.mkdir()
    vault = make_vault(pg_workdir)
    limit = 512 << 10  # pg_dump is paused while more than this waits unread
    manifest = backup_logical(vault, shop, "shop", jobs=2, spool_dir=str(spool), max_spool_bytes=limit)

    facts = manifest.source["spool"]
    data_files = [s for s in manifest.streams if s.name != "toc.dat"]
    total = sum(s.size for s in data_files)
    print(f"spool peak: {facts['peak_files']} of {len(data_files)} files, {facts['peak_bytes']} bytes on disk, "
          f"{facts['peak_unread']} unread, of {total}; {facts['streamed_early']} files done before pg_dump ended")
    assert facts["peak_files"] < len(data_files)
    assert facts["peak_unread"] < total  # never all at once (0.55 of it seen at -n 2)
    assert facts["streamed_early"] >= 1
    assert list(spool.iterdir()) == []  # the spool is gone, files and all


def test_second_backup_after_one_percent_change_stores_few_bytes(shop: PgConn, pg_cluster: LocalCluster,
                                                                 pg_workdir: Path) -> None:
    vault = make_vault(pg_workdir)
    first = backup_logical(vault, shop, "shop")
    touched = mutate(shop, 0.01)
    second = backup_logical(vault, shop, "shop", parent=first)

    ratio = second.stats.stored_bytes_new / first.stats.stored_bytes_new
    print(f"1% change ({touched} rows): second backup stored {second.stats.stored_bytes_new} bytes, "
          f"{ratio:.1%} of the first's {first.stats.stored_bytes_new}")
    assert second.parent == first.backup_id
    assert ratio < 0.25
    unchanged = [t for t in first.source["tables"] if t in ("public.attachments", "public.edge")]
    for table in unchanged:
        assert first.source["tables"][table]["checksum"] == second.source["tables"][table]["checksum"]
    # The source's heap order changed (updated rows moved): the restore still matches the manifest.
    checks = restore_logical(vault, second, PgConn(pg_cluster.conninfo("shop_v2")), use_fifos=False)
    assert all(c.ok for c in checks)


# ---- restore refusals and verification -----------------------------------------------------------


def test_restore_refuses_a_non_empty_database(shop: PgConn, pg_workdir: Path) -> None:
    vault = make_vault(pg_workdir)
    manifest = backup_logical(vault, shop, "shop")
    with pytest.raises(ConfigError, match="database shop is not empty"):
        restore_logical(vault, manifest, shop)


def test_verification_names_the_first_differing_table(shop: PgConn, pg_cluster: LocalCluster,
                                                      pg_workdir: Path) -> None:
    vault = make_vault(pg_workdir)
    manifest = backup_logical(vault, shop, "shop")
    target = PgConn(pg_cluster.conninfo("shop_restored"))
    restore_logical(vault, manifest, target)
    pg_cluster.execute("UPDATE customers SET name = 'Mallory' WHERE id = 7", dbname="shop_restored")

    with pytest.raises(IntegrityError, match=r"public\.customers differs .* checksum") as info:
        verify_tables(target, manifest)
    assert [c.table for c in info.value.checks if not c.ok] == ["public.customers"]


# ---- bad input ------------------------------------------------------------------------------------


def _password_role(cluster: LocalCluster) -> None:
    """Role `pwuser` that must give a password on 127.0.0.1 (scram), ahead of the trust rules."""
    cluster.execute("CREATE ROLE pwuser LOGIN SUPERUSER PASSWORD 'right-password'")
    hba = cluster.datadir / "pg_hba.conf"
    hba.write_text("host all pwuser 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    cluster.execute("SELECT pg_reload_conf()")


def test_password_is_checked_and_passed_to_pg_dump(shop: PgConn, pg_cluster: LocalCluster,
                                                   pg_workdir: Path) -> None:
    _password_role(pg_cluster)
    vault = make_vault(pg_workdir)
    conninfo = f"host=127.0.0.1 port={pg_cluster.port} user=pwuser dbname=shop"

    with pytest.raises(AuthError, match="password authentication failed"):
        backup_logical(vault, PgConn(conninfo, SecretStr("wrong")), "shop")
    assert vault.list_backups() == []  # refused before anything was written

    manifest = backup_logical(vault, PgConn(conninfo, SecretStr("right-password")), "shop")
    assert manifest.status == BackupStatus.DONE
    assert "right-password" not in manifest.model_dump_json()


def test_server_never_reached_is_a_config_error(pg_workdir: Path) -> None:
    # A refused first connection is a wrong host/port, not an outage (seawall.reach): exit 2 at once.
    vault = make_vault(pg_workdir)
    conn = PgConn(f"host=127.0.0.1 port={free_port()} user=postgres dbname=postgres")
    with pytest.raises(ConfigError, match=r"connecting to .*connection refused"):
        backup_logical(vault, conn, "nowhere")


def test_missing_database_is_a_config_error(pg_cluster: LocalCluster, pg_workdir: Path) -> None:
    vault = make_vault(pg_workdir)
    with pytest.raises(ConfigError, match='database "nosuchdb" does not exist'):
        backup_logical(vault, PgConn(pg_cluster.conninfo("nosuchdb")), "nosuchdb")


def test_pg_dump_failure_is_recorded_as_failed(pg_cluster: LocalCluster, pg_workdir: Path) -> None:
    conn = create_db(pg_cluster, "locked")
    pg_cluster.execute("CREATE TABLE secret (x int); INSERT INTO secret VALUES (1); CREATE ROLE limited LOGIN",
                       dbname="locked")
    vault = make_vault(pg_workdir)
    limited = PgConn(pg_cluster.conninfo("locked", user="limited"))

    with pytest.raises(PermanentError, match=r"pg_dump failed .*permission denied for table secret") as info:
        backup_logical(vault, limited, "locked")
    assert not isinstance(info.value, RetryableError)
    (failed,) = vault.list_backups("locked")
    assert failed.status == BackupStatus.FAILED
    assert "pg_dump failed" in failed.error and "permission denied" in failed.error
    assert conn.display()  # the owner's database itself is fine
