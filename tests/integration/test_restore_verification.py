"""Restore verification against real clusters, a real WAL archive and Prefect's test harness.

Covers the issue's acceptance: good logical and physical backups verify (every check passes, the
report has per-phase seconds and the achieved RPO, and is readable through the Prefect API); data
that restores but is wrong fails naming the check and the table; a deleted chunk fails at restore
naming it and leaves no scratch cluster behind; random picks; and the bad inputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from blocks.vault import VaultTarget
from flows.restore_verification import verify_restore
from seawall import heartbeat, ledger
from seawall.checks import amcheck
from seawall.checks.tables import largest_first
from seawall.checks.window import recoverable_window
from seawall.errors import BackupNotFound, ConfigError, ExitCode
from seawall.ledger import VerificationFailed
from seawall.postgres import binaries
from seawall.postgres.cluster import LocalCluster, port_in_use
from seawall.postgres.conn import PgConn
from seawall.postgres.logical import backup_logical
from seawall.postgres.physical import backup_physical
from seawall.vault import Vault, open_vault
from tasks.verification import artifact_key
from tests.fixtures.postgres import PASSPHRASE as PG_PASSPHRASE
from tests.fixtures.postgres import ArchivedCluster, switch_and_archive
from tests.unit.builders import FAST_SCRYPT, PASSPHRASE, SMALL_CHUNKER

SCHEMA_SQL = """
CREATE TABLE customers (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name text, score int);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers(id),
                     amount numeric(10,2) NOT NULL, note text);
CREATE INDEX orders_customer ON orders (customer_id);
INSERT INTO customers (email, name, score) SELECT 'c' || g || '@example.com', 'name ' || g, g % 100
  FROM generate_series(1, 2000) g;
INSERT INTO orders (customer_id, amount, note) SELECT 1 + g % 2000, (g % 997) / 7.0, repeat('n', g % 40)
  FROM generate_series(1, 6000) g;
"""


@pytest.fixture(scope="module", autouse=True)
def prefect_harness():
    # Imported here, not at the top: it loads Prefect's whole server (~2 CPU-s), and every xdist
    # worker imports every test module to collect it, most of them never running these tests.
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def passphrase_env(monkeypatch):
    monkeypatch.setenv("SEAWALL_PASSPHRASE", PASSPHRASE)


def _vault_at(workdir: Path) -> tuple[str, Vault]:
    from seawall.vault import init_vault

    path = workdir / "vault"
    path.mkdir()
    url = f"file://{path}"
    return url, init_vault(url, PASSPHRASE, scrypt=FAST_SCRYPT, chunker=SMALL_CHUNKER)


@pytest.fixture
def shop(pg_cluster: LocalCluster, pg_workdir: Path, passphrase_env) -> tuple[str, Vault, PgConn]:
    """A small shop database with heartbeats, backed up logically into a fresh vault."""
    pg_cluster.execute("CREATE DATABASE shop")
    conn = PgConn(pg_cluster.conninfo("shop"))
    pg_cluster.execute(SCHEMA_SQL, dbname="shop")
    for _ in range(3):
        heartbeat.beat(conn)
    url, vault = _vault_at(pg_workdir)
    backup_logical(vault, conn, "pg-shop")
    return url, vault, conn


def _statuses(report) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for c in report.checks:
        out.setdefault(c.name, set()).add(c.status)
    return out


def _artifact(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert found, f"no artifact {key}"
    return str(found[0].data)


def _no_scratch_left(before: set[str]) -> None:
    """No seawall-verify-* folder left in the temp dir and no postgres running from one.

    The temp dir is this test process's own (tests/conftest.py), so another xdist worker's or another
    run's scratch cluster is neither counted nor mistaken for ours.
    """
    tmp = Path(tempfile.gettempdir())
    assert {p.name for p in tmp.glob("seawall-verify-*")} <= before
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert f"{tmp}/seawall-verify-" not in ps


class _WithoutSystemPostgres(type(Path())):
    def glob(self, pattern, **kwargs):
        return iter(()) if str(self) == "/usr/lib/postgresql" else super().glob(pattern, **kwargs)


def _verify_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("seawall-verify-*")}


# ---- logical --------------------------------------------------------------------------------------
def test_good_logical_backup_verifies(shop, tmp_path):
    url, vault, _ = shop
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "orders.json").write_text(json.dumps({"name": "orders-sane", "expectations": [
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0}}]}))
    report = verify_restore(url, "pg-shop", suites=str(suites))
    assert report.status == "VERIFIED"
    statuses = _statuses(report)
    assert set(statuses) == {"rows-checksum", "schema", "amcheck", "gx:builtin", "gx:orders-sane"}
    assert all(s == {"pass"} for s in statuses.values())
    assert {c.table for c in report.checks if c.name == "rows-checksum"} == {
        "public.customers", "public.orders", "public.seawall_heartbeat"}
    # read largest first, reported in the manifest's order
    assert [c.table for c in report.checks if c.name == "rows-checksum"] == list(
        vault.latest_backup("pg-shop").source["tables"])
    # logical: GX checks row count and column order; rows-checksum, schema and amcheck cover the rest
    assert {c.detail for c in report.checks if c.name == "gx:builtin"} == {"2 expectations met"}
    assert {"provision", "fetch_decode_load", "post_data", "checks", "teardown"} <= set(report.phases)
    assert report.rto_restore_s > 0 and report.rto_verified_s >= report.rto_restore_s
    assert report.rpo_source == "heartbeat" and report.rpo_s is not None and report.rpo_s >= 0
    stored = ledger.latest_verified(vault, "pg-shop")
    assert stored is not None and stored.verification_id == report.verification_id
    markdown = _artifact(artifact_key("pg-shop"))
    assert "VERIFIED" in markdown and "achieved RPO" in markdown and report.backup_id in markdown


def test_wrong_data_fails_naming_check_and_table(shop, tmp_path):
    url, vault, _ = shop
    suites = tmp_path / "suites"
    suites.mkdir()
    (suites / "public.customers.json").write_text(json.dumps({"name": "scores", "expectations": [
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "score", "max_value": 50}}]}))
    (suites / "ghost.json").write_text(json.dumps({"name": "ghost", "expectations": [
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}]}))
    (suites / "nocol.json").write_text(json.dumps({"name": "nocol", "meta": {"table": "public.orders"},
                                                   "expectations": [{"type": "expect_column_values_to_not_be_null",
                                                                     "kwargs": {"column": "missing_col"}}]}))
    with pytest.raises(VerificationFailed) as caught:
        verify_restore(url, "pg-shop", suites=str(suites), before_checks="DELETE FROM orders WHERE id <= 10")
    report = caught.value.report
    assert report.status == "FAILED" and caught.value.exit_code == ExitCode.INTEGRITY
    bad = {(c.name, c.table): c for c in report.failed_checks}
    assert ("rows-checksum", "public.orders") in bad and "rows 5990 != recorded 6000" in bad[
        ("rows-checksum", "public.orders")].detail
    assert ("gx:builtin", "public.orders") in bad
    assert ("gx:scores", "public.customers") in bad
    assert ("gx:ghost", "public.ghost") in bad and "does not exist" in bad[("gx:ghost", "public.ghost")].detail
    assert ("gx:nocol", "public.orders") in bad and "missing_col" in bad[("gx:nocol", "public.orders")].detail
    assert ("rows-checksum", "public.customers") not in bad  # the others still ran and passed
    assert "rows-checksum (public.orders)" in str(caught.value)
    assert ledger.list_reports(vault, "pg-shop")[-1].status == "FAILED"
    assert ledger.latest_verified(vault, "pg-shop") is None


def test_deleted_chunk_fails_at_restore_and_leaves_nothing(shop, pg_workdir):
    url, vault, _ = shop
    manifest = vault.latest_backup("pg-shop")
    chunk = manifest.streams[-1].chunks[0][0]
    pack = vault.chunk_object(chunk)
    vault.store.delete(pack)  # with it, the other chunks it holds
    before = _verify_dirs()
    with pytest.raises(VerificationFailed) as caught:
        verify_restore(url, "pg-shop")
    assert pack in str(caught.value) and "restore failed" in str(caught.value)
    assert caught.value.exit_code == ExitCode.INTEGRITY
    report = caught.value.report
    assert report.status == "FAILED" and report.checks == []
    port = int(report.scratch.split("port ")[1].split()[0])
    assert not port_in_use(port)
    assert not Path(report.scratch.split(" in ")[1]).exists()
    _no_scratch_left(before)


def test_bad_input(shop, pg_workdir, monkeypatch, tmp_path):
    url, _, _ = shop
    with pytest.raises(BackupNotFound):
        verify_restore(url, "pg-nothing")
    with pytest.raises(BackupNotFound):
        verify_restore(url, "pg-shop", backup="20200101T000000Z-abcdef")
    with pytest.raises(ConfigError, match="physical"):
        verify_restore(url, "pg-shop", target_time=datetime.now(UTC))
    busy = LocalCluster.create(pg_workdir)
    busy.start()
    try:
        with pytest.raises(ConfigError, match=f"port {busy.port} is already in use"):
            verify_restore(url, "pg-shop", scratch_port=busy.port)
    finally:
        busy.remove()
    empty = tmp_path / "no-binaries"
    empty.mkdir()
    monkeypatch.setenv("SEAWALL_PG_BINDIR", str(empty))
    # binaries.bindir() still falls back to /usr/lib/postgresql/*/bin when SEAWALL_PG_BINDIR lacks the
    # tools: hide that too, so this machine looks like one without the server package.
    monkeypatch.setattr(binaries, "Path", _WithoutSystemPostgres)
    binaries.bindir.cache_clear()
    try:
        with pytest.raises(ConfigError, match="apt-get install postgresql"):
            verify_restore(url, "pg-shop")
    finally:
        monkeypatch.delenv("SEAWALL_PG_BINDIR")
        monkeypatch.setattr(binaries, "Path", Path)
        binaries.bindir.cache_clear()


def test_scratch_server_gets_a_new_database_dropped_afterwards(shop, pg_cluster):
    url, _, _ = shop
    dsn = pg_cluster.conninfo("verify_here")
    report = verify_restore(url, "pg-shop", scratch=dsn)
    assert report.status == "VERIFIED" and "verify_here" in report.scratch
    assert not pg_cluster.execute("SELECT 1 FROM pg_database WHERE datname = 'verify_here'")
    with pytest.raises(ConfigError, match="already exists"):
        verify_restore(url, "pg-shop", scratch=pg_cluster.conninfo("shop"))


def test_checks_take_the_costliest_tables_first(pg_cluster):
    pg_cluster.execute("CREATE DATABASE ord")
    pg_cluster.execute("""
        CREATE TABLE a_small (id int PRIMARY KEY); INSERT INTO a_small SELECT generate_series(1, 10);
        CREATE TABLE z_big (id int PRIMARY KEY, v text); CREATE INDEX ON z_big (v);
        INSERT INTO z_big SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g;""", dbname="ord")
    conn = PgConn(pg_cluster.conninfo("ord"))
    assert largest_first(conn, ["public.a_small", "public.ghost", "public.z_big"]) == [
        "public.z_big", "public.a_small", "public.ghost"]
    assert list(amcheck.btree_indexes(conn)) == ["public.z_big", "public.a_small"]
    results = amcheck.check_btree_indexes(conn)
    assert [(r.table, r.status) for r in results] == [("public.a_small", "pass"), ("public.z_big", "pass")]
    assert "2 btree index(es) ok" in results[1].detail


# ---- physical -------------------------------------------------------------------------------------
@pytest.fixture
def physical(pg_archived: ArchivedCluster) -> tuple[VaultTarget, list[datetime]]:
    """A physical backup of a cluster with an `app` database, then heartbeats over ~3 s, archived."""
    cluster = pg_archived.cluster
    cluster.execute("CREATE DATABASE app")
    cluster.execute(SCHEMA_SQL, dbname="app")
    app = PgConn(cluster.conninfo("app"))
    heartbeat.beat(app)
    backup_physical(open_vault(pg_archived.vault_url, PG_PASSPHRASE), PgConn(cluster.conninfo()), "pg-cluster")
    beats = []
    for _ in range(6):
        time.sleep(0.5)
        beats.append(heartbeat.beat(app))
    switch_and_archive(cluster)
    return VaultTarget(url=pg_archived.vault_url, passphrase=PG_PASSPHRASE), beats


def test_good_physical_backup_verifies_latest_and_pitr(physical):
    vault, beats = physical
    before = _verify_dirs()
    report = verify_restore(vault, "pg-cluster")
    assert report.status == "VERIFIED" and report.target == "latest"
    statuses = _statuses(report)
    assert set(statuses) == {"pg_verifybackup", "amcheck", "gx:builtin"}
    assert all(s == {"pass"} for s in statuses.values())
    assert any(c.table == "app/public.orders" for c in report.checks if c.name == "amcheck")
    # physical: no row-level comparison, so GX also scans for nulls and duplicate keys
    # (ordered columns, 3 NOT NULL columns, the primary key)
    orders = next(c for c in report.checks if c.name == "gx:builtin" and c.table == "app/public.orders")
    assert orders.detail == "5 expectations met"
    assert {"fetch_decode_extract", "replay", "checks"} <= set(report.phases)
    assert report.rpo_source == "heartbeat" and report.restore_point == beats[-1]

    target = beats[2] + timedelta(milliseconds=200)
    pitr = verify_restore(vault, "pg-cluster", target_time=target)
    assert pitr.status == "VERIFIED" and pitr.target_time == target
    assert _statuses(pitr)["pitr-target"] == {"pass"}
    assert pitr.restore_point == beats[2] and 0.19 <= pitr.rpo_s <= 0.21
    assert "achieved RPO" in _artifact(artifact_key("pg-cluster"))
    _no_scratch_left(before)


def test_physical_bad_target_and_random_points(physical):
    vault, beats = physical
    with pytest.raises(ConfigError, match="outside the recoverable window"):
        verify_restore(vault, "pg-cluster", target_time=datetime.now(UTC) + timedelta(hours=1))
    v = vault.open_vault()
    window = recoverable_window(v, v.latest_backup("pg-cluster"))
    assert window.end is not None and window.end >= beats[-1]
    reports = [verify_restore(vault, "pg-cluster", backup="random", seed=seed) for seed in (1, 2)]
    assert all(r.status == "VERIFIED" and r.random_pick for r in reports)
    assert all(window.contains(r.target_time) for r in reports)
    assert reports[0].target_time != reports[1].target_time
    assert all(_statuses(r)["pitr-target"] == {"pass"} for r in reports)


# ---- file trees -----------------------------------------------------------------------------------
def test_file_tree_verifies_and_a_changed_file_fails(tmp_path, passphrase_env):
    from seawall.checks.tree import check_tree
    from seawall.sources.files import backup_tree, restore_tree

    src = tmp_path / "www"
    (src / "sub").mkdir(parents=True)
    (src / "index.html").write_text("<h1>hi</h1>")
    (src / "sub" / "data.bin").write_bytes(os.urandom(300_000))
    (src / "link").symlink_to("index.html")
    url, vault = _vault_at(tmp_path)
    manifest = backup_tree(vault, src, "files-www")
    before = _verify_dirs()
    report = verify_restore(url, "files-www")
    assert report.status == "VERIFIED" and _statuses(report) == {"file-tree": {"pass"}}
    assert "fetch_decode_write" in report.phases and report.rpo_source == "backup-start"
    _no_scratch_left(before)
    restored = tmp_path / "restored"
    restore_tree(vault, manifest, restored)
    (restored / "sub" / "data.bin").write_bytes(b"tampered")
    (restored / "extra.txt").write_text("x")
    [res] = check_tree(vault, manifest, restored)
    assert res.status == "fail" and "sub/data.bin: size" in res.detail and "extra.txt: not in the backup" in res.detail
