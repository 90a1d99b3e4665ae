"""MariaDB through the `seawall` command, on 1M generated rows (issue #21, acceptance 1 and bad input).

One real server per module (binary logging on, a password-protected account over TCP), one
generated shop database (foreign keys, a trigger, a view, a stored procedure; quotes, newlines,
unicode, NULLs and binary values in the data), and a real Prefect server behind the CLI.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from seawall.errors import ExitCode
from seawall.mariadb.conn import MyConn
from seawall.mariadb.logical_restore import table_digests
from seawall.mariadb.physical import scratch_server
from seawall.mariadb.server import chown_to_server_user
from seawall.vault import init_vault
from tests.fixtures.datagen_sources import create_shop
from tests.fixtures.sources import MARIADB_PASSWORD, MariaDB, start_mariadb
from tests.unit.builders import FAST_SCRYPT

PASS = "correct horse"
SCALE = float(os.environ.get("SEAWALL_TEST_SOURCES_SCALE", "1"))  # < 1 only for quick local runs
ROWS = int(700_000 * SCALE) + int(300_000 * SCALE)
TABLES = {"customers", "orders", "order items", "audit", "empty_table"}


@pytest.fixture(scope="module")
def shop(mariadb: MariaDB) -> MariaDB:
    create_shop(mariadb.server, "shop", *(int(n * SCALE) for n in (100_000, 300_000, 300_000)))
    return mariadb


@pytest.fixture
def server_dir():
    """A directory the mysql OS user can enter (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="seawall-test-mariadb-"))
    chown_to_server_user(path)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def vault(tmp_path):
    url = f"file://{tmp_path}/vault"
    init_vault(url, PASS, scrypt=FAST_SCRYPT)
    return url


def _socket_conn(server, database: str) -> MyConn:
    return MyConn(socket=str(server.socket), user="root", database=database)


def _one_line(result) -> bool:
    return "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1


def test_logical_and_physical_round_trips_of_1m_rows(cli, shop, vault, server_dir):
    source = table_digests(_socket_conn(shop.server, "shop"))
    assert set(source) == TABLES - {"empty_table"} and sum(t["rows"] for t in source.values()) == ROWS

    backup = cli("backup", "mariadb", "--dsn", shop.dsn("shop"), "--vault", vault, "--json")
    assert backup.code == 0, backup.err
    row = backup.json()
    assert row["kind"] == "mariadb-logical" and MARIADB_PASSWORD not in backup.out + backup.err
    assert {t: v["rows"] for t, v in row["source"]["tables"].items()} == \
        {t: source.get(t, {"rows": 0})["rows"] for t in TABLES}
    restored = cli("restore", row["backup_id"], "--vault", vault, "--to-mariadb", shop.dsn("shop_copy"))
    assert restored.code == 0, restored.err
    assert table_digests(_socket_conn(shop.server, "shop_copy")) == source
    assert shop.server.execute("CALL top_customers(3)", database="shop_copy") == \
        shop.server.execute("CALL top_customers(3)", database="shop")
    assert shop.server.execute("SHOW TRIGGERS", database="shop_copy")[0][0] == "orders_audit"

    again = cli("restore", row["backup_id"], "--vault", vault, "--to-mariadb", shop.dsn("shop_copy"))
    assert again.code == ExitCode.USAGE and "not empty" in again.err and _one_line(again)

    physical = cli("backup", "mariadb", "--dsn", shop.dsn(), "--mode", "physical", "--vault", vault, "--json")
    assert physical.code == 0, physical.err
    datadir = server_dir / "physical" / "data"
    out = cli("restore", physical.json()["backup_id"], "--vault", vault, "--to-datadir", str(datadir))
    assert out.code == 0, out.err
    server = scratch_server(datadir)
    server.start()
    try:
        assert table_digests(_socket_conn(server, "shop")) == source
    finally:
        server.remove()
    report = cli("verify-restore", "--vault", vault, "--dataset", physical.json()["dataset"], "--json")
    assert report.code == 0, [c for c in report.json()["checks"] if c["status"] != "pass"] or report.json()
    checks = report.json()["checks"]
    assert {c["name"] for c in checks} == {"check-table", "gx:builtin"}
    assert {c["table"] for c in checks if c["name"] == "check-table"} >= {f"shop.{t}" for t in TABLES}  # + shop_copy


def _wait_next_second() -> datetime:
    """The next whole second (binlog event times have one-second resolution), once it has begun."""
    now = time.time()
    time.sleep(int(now) + 1 - now)
    return datetime.fromtimestamp(int(time.time()), UTC)


def test_pitr_from_binlogs_gives_exactly_the_rows_committed_before_the_time(cli, shop, vault, server_dir):
    shop.server.execute("CREATE DATABASE pitr")
    shop.server.execute("CREATE TABLE t (id INT PRIMARY KEY, tag VARCHAR(10), note TEXT)", database="pitr")
    shop.server.execute("INSERT INTO t SELECT seq, 'base', 'x' FROM seq_1_to_20000", database="pitr")
    logical = cli("backup", "mariadb", "--dsn", shop.dsn("pitr"), "--vault", vault, "--json")
    physical = cli("backup", "mariadb", "--dsn", shop.dsn(), "--mode", "physical", "--vault", vault,
                   "--dataset", "mariadb-pitr-server", "--json")
    assert logical.code == 0 and physical.code == 0, logical.err + physical.err
    shop.server.execute("INSERT INTO t SELECT seq, 'before', 'é''\\n' FROM seq_20001_to_25000", database="pitr")
    shop.server.execute("UPDATE t SET note = 'changed' WHERE id <= 100", database="pitr")
    target = _wait_next_second()
    shop.server.execute("INSERT INTO t SELECT seq, 'after', NULL FROM seq_25001_to_26000", database="pitr")
    shop.server.execute("DELETE FROM t WHERE id BETWEEN 101 AND 200", database="pitr")
    expected = {"base": 20000, "before": 5000}
    for dataset in ("mariadb-pitr", "mariadb-pitr-server"):
        archived = cli("binlog-archive", "--dsn", shop.dsn(), "--vault", vault, "--dataset", dataset)
        assert archived.code == 0, archived.err

    when = target.isoformat()
    out = cli("restore", logical.json()["backup_id"], "--vault", vault, "--to-mariadb", shop.dsn("pitr_copy"),
              "--target-time", when)
    assert out.code == 0, out.err
    assert dict(shop.server.execute("SELECT tag, COUNT(*) FROM t GROUP BY tag", database="pitr_copy")) == expected
    assert shop.server.execute("SELECT COUNT(*) FROM t WHERE note = 'changed'", database="pitr_copy")[0][0] == 100

    datadir = server_dir / "pitr-physical" / "data"
    out = cli("restore", physical.json()["backup_id"], "--vault", vault, "--to-datadir", str(datadir),
              "--target-time", when)
    assert out.code == 0, out.err
    server = scratch_server(datadir)
    server.start()
    try:
        assert dict(server.execute("SELECT tag, COUNT(*) FROM t GROUP BY tag", database="pitr")) == expected
    finally:
        server.remove()


def test_verify_restore_and_copy(cli, shop, vault, tmp_path):
    backup = cli("backup", "mariadb", "--dsn", shop.dsn("shop"), "--vault", vault, "--json")
    assert backup.code == 0, backup.err
    dest = f"file://{tmp_path}/dr"
    copied = cli("copy", "--from", vault, "--to", dest, "--init-dest")
    assert copied.code == 0, copied.err
    report = cli("verify-restore", "--vault", dest, "--dataset", "mariadb-shop", "--json")
    assert report.code == 0, [c for c in report.json()["checks"] if c["status"] != "pass"] or report.json()
    checks = report.json()["checks"]
    assert report.json()["status"] == "VERIFIED" and {c["name"] for c in checks} == \
        {"rows-checksum", "check-table", "gx:builtin"}
    assert {c["table"] for c in checks if c["name"] == "rows-checksum"} == TABLES


def test_bad_input_one_line_each(cli, shop, vault):
    wrong = shop.dsn("shop").replace("%23", "%24")  # one character of the password changed
    denied = cli("backup", "mariadb", "--dsn", wrong, "--vault", vault)
    assert denied.code == ExitCode.USAGE and "Access denied" in denied.err and _one_line(denied)
    assert MARIADB_PASSWORD not in denied.err
    from seawall.postgres.cluster import free_port

    # first contact refused: a configuration error at once (seawall.reach), not minutes of retries
    gone = cli("backup", "mariadb", "--dsn", f"mysql://x@127.0.0.1:{free_port()}/shop", "--vault", vault,
               env={"SEAWALL_RETRY_BACKOFF_SECONDS": "30"})
    assert gone.code == ExitCode.USAGE and "connection refused" in gone.err and _one_line(gone)

    no_binlog = start_mariadb(binlog=False)
    try:
        no_binlog.server.execute("CREATE DATABASE app")
        no_binlog.server.execute("CREATE TABLE t (id INT PRIMARY KEY)", database="app")
        backup = cli("backup", "mariadb", "--dsn", no_binlog.dsn("app"), "--vault", vault, "--json")
        assert backup.code == 0, backup.err
        archive = cli("binlog-archive", "--dsn", no_binlog.dsn(), "--vault", vault, "--dataset", "mariadb-app")
        assert archive.code == ExitCode.USAGE and "binary logging is off" in archive.err and _one_line(archive)
        pitr = cli("restore", backup.json()["backup_id"], "--vault", vault, "--to-mariadb",
                   no_binlog.dsn("app_copy"), "--target-time", datetime.now(UTC).isoformat())
        assert pitr.code == ExitCode.USAGE and "binary logging off" in pitr.err and _one_line(pitr)
        assert not no_binlog.server.execute("SHOW DATABASES LIKE 'app_copy'")  # nothing half-restored
    finally:
        no_binlog.server.remove()
