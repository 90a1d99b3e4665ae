"""Logical backup and restore of a database nobody here designed (tests/fixtures/pg_weird.py).

One source cluster and one fresh target cluster are shared by the module (CI cost); each test
restores into its own database or cluster state and says so. Covers issue 16's first acceptance
point: restore into a fresh cluster and restore verification both pass; `pg_dump --schema-only` of
source and copy are identical; per-table ordered md5, large objects, sequence values and roles are
identical. And the role bad inputs: a collision in the target, a policy role missing with
`--roles skip`, a mapping.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from seawall.errors import ConfigError
from seawall.postgres.cluster import LocalCluster, make_private_dir
from seawall.postgres.conn import PgConn
from seawall.postgres.logical import backup_logical
from seawall.postgres.logical_restore import restore_logical
from seawall.postgres.roles import RoleOptions
from seawall.vault import Vault, init_vault
from tests.fixtures import pg_weird
from tests.unit.builders import FAST_SCRYPT, PASSPHRASE, SMALL_CHUNKER

ROLE_NAMES = ["app_reader", 'App "Writer" Ü', "report.user"]


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = make_private_dir("seawall-weird-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def source(workdir: Path) -> Iterator[LocalCluster]:
    cluster = LocalCluster.create(workdir)
    cluster.start()
    pg_weird.create(cluster)
    yield cluster
    cluster.remove()


@pytest.fixture(scope="module")
def target(workdir: Path) -> Iterator[LocalCluster]:
    cluster = LocalCluster.create(workdir)
    cluster.start()
    yield cluster
    cluster.remove()


@pytest.fixture(scope="module")
def backed_up(source: LocalCluster, workdir: Path) -> tuple[Vault, object]:
    path = workdir / "vault"
    path.mkdir()
    vault = init_vault(f"file://{path}", PASSPHRASE, scrypt=FAST_SCRYPT, chunker=SMALL_CHUNKER)
    manifest = backup_logical(vault, PgConn(source.conninfo(pg_weird.DBNAME)), "weird", passwords=True)
    return vault, manifest


def test_manifest_keys_tables_with_postgres_quoting(backed_up) -> None:
    _, manifest = backed_up
    tables = manifest.source["tables"]
    assert '"a b"."c d"' in tables and '"Sales.EU"."Orders"' in tables
    assert '"Ünï"."Événements 2024"' in tables and '"a b"."scratch pad"' in tables
    assert tables['"a b"."c d"']["rows"] == 300
    assert sorted(manifest.source["roles"]) == sorted(["postgres", *ROLE_NAMES])
    assert "unrelated_role" not in manifest.source["roles"]
    assert "report-secret" not in manifest.model_dump_json() and "SCRAM" not in manifest.model_dump_json()


def test_restore_into_a_fresh_cluster_is_identical(backed_up, source: LocalCluster, target: LocalCluster) -> None:
    vault, manifest = backed_up
    checks = restore_logical(vault, manifest, PgConn(target.conninfo(pg_weird.DBNAME)), jobs=2)
    assert checks and all(c.ok for c in checks)
    db = pg_weird.DBNAME
    assert pg_weird.schema_dump(target, db) == pg_weird.schema_dump(source, db)
    assert pg_weird.table_md5s(target, db) == pg_weird.table_md5s(source, db)
    assert pg_weird.large_objects(target, db) == pg_weird.large_objects(source, db)
    assert len(pg_weird.large_objects(target, db)) == 3
    assert pg_weird.sequences(target, db) == pg_weird.sequences(source, db)
    assert pg_weird.roles(target, ROLE_NAMES) == pg_weird.roles(source, ROLE_NAMES)  # passwords too
    assert not target.execute("SELECT 1 FROM pg_roles WHERE rolname = 'unrelated_role'")


def test_role_collision_is_refused_and_nothing_is_left(backed_up, target: LocalCluster) -> None:
    vault, manifest = backed_up
    target.execute("CREATE ROLE app_reader_clash LOGIN")
    target.execute('ALTER ROLE app_reader RENAME TO app_reader_orig')
    target.execute('ALTER ROLE app_reader_clash RENAME TO app_reader')  # same name, LOGIN: another role
    try:
        with pytest.raises(ConfigError, match=r"role 'app_reader' exists in .* with other attributes") as info:
            restore_logical(vault, manifest, PgConn(target.conninfo("clash")))
        assert "--role-map app_reader=NEW" in info.value.hint
        assert not target.execute("SELECT 1 FROM pg_database WHERE datname = 'clash'")
    finally:
        target.execute("DROP ROLE app_reader")
        target.execute("ALTER ROLE app_reader_orig RENAME TO app_reader")


def test_skip_refuses_a_policy_role_the_target_lacks_and_map_renames(backed_up, workdir: Path) -> None:
    vault, manifest = backed_up
    bare = LocalCluster.create(workdir)
    bare.start()
    try:
        with pytest.raises(ConfigError, match=r"policy names role ('App \"Writer\" Ü'|'app_reader')"):
            restore_logical(vault, manifest, PgConn(bare.conninfo("skipped")), role_options=RoleOptions("skip"))
        assert not bare.execute("SELECT 1 FROM pg_database WHERE datname = 'skipped'")

        options = RoleOptions("create", role_map={"app_reader": "staging reader"})
        restore_logical(vault, manifest, PgConn(bare.conninfo("mapped")), role_options=options)
        assert "staging reader" in options.created and "app_reader" not in options.created
        policies = bare.execute("SELECT polname, array(SELECT rolname FROM pg_roles WHERE oid = ANY(polroles))"
                                " FROM pg_policy ORDER BY 1", dbname="mapped")
        assert policies == [("readers see 2024", ["staging reader"]), ('writer "all"', ['App "Writer" Ü'])]
        assert bare.execute("SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
                            "JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = 'report.user'") == \
            [("staging reader",)]
    finally:
        bare.remove()
