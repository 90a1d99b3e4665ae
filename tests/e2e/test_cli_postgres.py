"""PostgreSQL through the `seawall` command: logical and physical backups, PITR restores, wal-check.

Real clusters (run as the postgres OS user), a real WAL archive through `seawall wal-push`, and a
real Prefect server behind the CLI.
"""

from __future__ import annotations

import shutil
import time

from seawall.errors import ExitCode
from seawall.postgres.cluster import LocalCluster, free_port
from tests.fixtures import pg_weird
from tests.fixtures.postgres import ArchivedCluster, switch_and_archive


def _seed(cluster: LocalCluster) -> None:
    cluster.execute("CREATE DATABASE app")
    cluster.execute("CREATE TABLE t (id serial PRIMARY KEY, tag text, payload jsonb)", dbname="app")
    _insert(cluster, "A")


def _insert(cluster: LocalCluster, tag: str, n: int = 200) -> None:
    cluster.execute(
        "INSERT INTO t (tag, payload) SELECT %s, jsonb_build_object('n', g, 'note', repeat('x', g %% 50)) "
        "FROM generate_series(1, %s) g",
        (tag, n),
        dbname="app",
    )


def _tags(datadir: str, port: int, socket_dir: str | None = None) -> dict[str, int]:
    cluster = LocalCluster(datadir, port, socket_dir=socket_dir)
    return dict(cluster.execute("SELECT tag, count(*)::int FROM t GROUP BY tag ORDER BY tag", dbname="app"))


def test_logical_backup_and_restore(cli, pg_archived: ArchivedCluster):
    pg, args = pg_archived.cluster, ("--passphrase-file", str(pg_archived.passphrase_file))
    _seed(pg)
    dsn = pg.conninfo("app")
    backup = cli("backup", "postgres", "--dsn", dsn, "--vault", pg_archived.vault_url, "--json", *args)
    assert backup.code == 0, backup.err
    row = backup.json()
    assert row["kind"] == "postgres-logical" and row["source"]["tables"]["public.t"]["rows"] == 200
    restored = cli(
        "restore", row["backup_id"], "--vault", pg_archived.vault_url, "--to-dsn", pg.conninfo("app_restored"), *args
    )
    assert restored.code == 0, restored.err
    assert pg.execute("SELECT count(*) FROM t", dbname="app_restored")[0][0] == 200
    again = cli(
        "restore", row["backup_id"], "--vault", pg_archived.vault_url, "--to-dsn", pg.conninfo("app_restored"), *args
    )
    assert again.code == ExitCode.USAGE and "not empty" in again.err


def test_physical_backup_pitr_and_wal_check(cli, pg_archived: ArchivedCluster, pg_workdir):
    pg, vault = pg_archived.cluster, pg_archived.vault_url
    args = ("--passphrase-file", str(pg_archived.passphrase_file))
    _seed(pg)
    backup = cli("backup", "postgres", "--dsn", pg.conninfo(), "--vault", vault, "--mode", "physical", "--json", *args)
    assert backup.code == 0, backup.err
    backup_id = backup.json()["backup_id"]
    _insert(pg, "B")
    pg.execute("SELECT pg_create_restore_point('p1')")
    time.sleep(1.1)
    _insert(pg, "C")
    switch_and_archive(pg)
    switch_and_archive(pg)

    port = free_port()
    datadir = pg_workdir / "pitr-p1"
    result = cli(
        "restore",
        backup_id,
        "--vault",
        vault,
        "--to-datadir",
        str(datadir),
        "--port",
        str(port),
        "--target-name",
        "p1",
        "--no-archive",  # an inspection copy: its timeline 2 stays out of the vault
        "--json",
        *args,
    )
    assert result.code == 0, result.err
    info = result.json()
    assert _tags(info["datadir"], info["port"], info.get("socket_dir")) == {"A": 200, "B": 200}
    LocalCluster(info["datadir"], info["port"], socket_dir=info.get("socket_dir")).stop("immediate")

    # The new target options through the CLI: a timeline the archive lacks is one line, exit 2, nothing
    # written; `--target immediate --target-action shutdown` leaves a stopped copy at the backup's end.
    lacking = cli("restore", backup_id, "--vault", vault, "--to-datadir", str(pg_workdir / "tl9"),
                  "--target-timeline", "9", *args)
    assert lacking.code == ExitCode.USAGE and "timeline 9 is not in the archive" in lacking.err, lacking.err
    assert len(lacking.err.strip().splitlines()) == 1 and not (pg_workdir / "tl9").exists()
    stopped = cli("restore", backup_id, "--vault", vault, "--to-datadir", str(pg_workdir / "imm"), "--port",
                  str(free_port()), "--target", "immediate", "--target-action", "shutdown", "--no-archive",
                  "--json", *args)
    assert stopped.code == 0, stopped.err
    assert stopped.json()["mode"] == "shutdown" and not stopped.json()["running"]
    conf = (pg_workdir / "imm" / "postgresql.auto.conf").read_text()
    assert "recovery_target = 'immediate'" in conf and "walspool" not in conf and "wal-get" in conf
    shutil.rmtree(pg_workdir / "imm", ignore_errors=True)
    standby = cli("restore", backup_id, "--vault", vault, "--to-datadir", str(pg_workdir / "sb"), "--port",
                  str(free_port()), "--standby", "--json", *args)
    assert standby.code == 0, standby.err
    sb = standby.json()
    assert sb["mode"] == "standby" and sb["running"]
    copy = LocalCluster(sb["datadir"], sb["port"], socket_dir=sb.get("socket_dir"))
    assert copy.execute("SELECT pg_is_in_recovery()")[0][0]
    assert copy.execute("SELECT count(*) FROM t", dbname="app")[0][0] >= 200
    copy.stop("immediate")
    shutil.rmtree(pg_workdir / "sb", ignore_errors=True)

    ok = cli("wal-check", "--vault", vault, "--json", *args)
    assert ok.code == 0, ok.out + ok.err
    report = ok.json()
    assert report["ok"] and backup_id in report["backups"]

    # Lose a segment in the middle of the backup's window: wal-check names it and the backup.
    archived = sorted(p for p in (pg_workdir.glob("vault-*/wal/*/*")) if p.name[:8].isdigit() and len(p.name) == 24)
    victim = archived[len(archived) // 2]
    victim.unlink()
    broken = cli("wal-check", "--vault", vault, *args)
    assert broken.code == ExitCode.INTEGRITY
    assert victim.name in broken.out and backup_id in broken.out
    late = cli(
        "restore",
        backup_id,
        "--vault",
        vault,
        "--to-datadir",
        str(pg_workdir / "pitr-late"),
        "--port",
        str(free_port()),
        *args,
    )
    assert late.code == ExitCode.INTEGRITY and victim.name in late.err and len(late.err.strip().splitlines()) == 1
    assert not (pg_workdir / "pitr-late").exists() or not any((pg_workdir / "pitr-late").iterdir())
    shutil.rmtree(datadir, ignore_errors=True)


def test_bad_targets_are_one_line(cli, pg_archived: ArchivedCluster, pg_workdir):
    vault, args = pg_archived.vault_url, ("--passphrase-file", str(pg_archived.passphrase_file))
    two = cli(
        "restore",
        "20260101T000000Z-abcdef",
        "--vault",
        vault,
        "--to-datadir",
        str(pg_workdir / "x"),
        "--target-name",
        "p1",
        "--target-lsn",
        "0/1",
        *args,
    )
    assert two.code == ExitCode.USAGE and "at most one" in two.err
    both = cli("restore", "20260101T000000Z-abcdef", "--vault", vault, "--to", "/tmp/x", "--to-dsn", "dbname=x", *args)
    assert both.code == ExitCode.USAGE and "exactly one" in both.err
    dsn = f"host=127.0.0.1 port={free_port()} dbname=x user=x"
    unreachable = cli(
        "backup",
        "postgres",
        "--dsn",
        dsn,
        "--vault",
        vault,
        *args,
        env={"SEAWALL_TASK_RETRIES": "2", "SEAWALL_RETRY_BACKOFF_SECONDS": "0.2"},
    )
    # refused before the server ever answered: a configuration problem, exit 2 at once (seawall/reach.py)
    assert unreachable.code == ExitCode.USAGE and "Traceback" not in unreachable.err
    assert "connecting to" in unreachable.err and len(unreachable.err.strip().splitlines()) == 1


def test_odd_identifiers_roles_restore_and_verify(cli, pg_archived: ArchivedCluster, pg_workdir):
    """Issue 16 point 1 through the CLI: a database nobody here designed, backed up with its roles,
    restored into a fresh cluster (roles created) and verified in a throwaway cluster."""
    source, vault = pg_archived.cluster, pg_archived.vault_url
    args = ("--passphrase-file", str(pg_archived.passphrase_file))
    db = pg_weird.create(source)
    backup = cli("backup", "postgres", "--dsn", source.conninfo(db), "--vault", vault, "--dataset", "weird",
                 "--with-passwords", "--json", *args)
    assert backup.code == 0, backup.err
    row = backup.json()
    assert row["source"]["tables"]['"a b"."c d"']["rows"] == 300
    assert "report-secret" not in backup.out and "SCRAM" not in backup.out

    fresh = LocalCluster.create(pg_workdir)
    fresh.start()
    try:
        restored = cli("restore", row["backup_id"], "--vault", vault, "--to-dsn", fresh.conninfo(db), *args)
        assert restored.code == 0, restored.err
        assert pg_weird.schema_dump(fresh, db) == pg_weird.schema_dump(source, db)
        assert pg_weird.table_md5s(fresh, db) == pg_weird.table_md5s(source, db)
        assert pg_weird.large_objects(fresh, db) == pg_weird.large_objects(source, db)
        assert pg_weird.sequences(fresh, db) == pg_weird.sequences(source, db)
        names = ["app_reader", 'App "Writer" Ü', "report.user"]
        assert pg_weird.roles(fresh, names) == pg_weird.roles(source, names)

        # A role of the same name but other attributes in the target: one line, exit 2, nothing left.
        fresh.execute('ALTER ROLE "report.user" NOLOGIN')
        clash = cli("restore", row["backup_id"], "--vault", vault, "--to-dsn", fresh.conninfo("second copy"), *args)
        assert clash.code == ExitCode.USAGE and "role 'report.user' exists" in clash.err, clash.err
        assert len(clash.err.strip().splitlines()) == 1 and "Traceback" not in clash.err
        assert not fresh.execute("SELECT 1 FROM pg_database WHERE datname = 'second copy'")
    finally:
        fresh.remove()

    verified = cli("verify-restore", "--vault", vault, "--dataset", "weird", "--json", *args)
    assert verified.code == 0, verified.err + verified.out
    report = verified.json()
    assert report["status"] == "VERIFIED"
    failed = [c for c in report["checks"] if c["status"] != "pass"]
    assert not failed, failed
    assert '"a b"."c d"' in {c["table"] for c in report["checks"] if c["name"] == "rows-checksum"}
