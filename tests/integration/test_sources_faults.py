"""MariaDB and Redis restores that fail leave nothing that looks usable (issue #21, bad input).

Small data on real servers: a chunk deleted from the vault makes a logical, a physical and a Redis
restore fail naming it (exit code 3 family), and the database, data directory or Redis keys a
failed restore wrote are gone; a binlog missing from the archive is named before anything is
written; a non-empty target is refused untouched.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from seawall.errors import ConfigError, IntegrityError
from seawall.mariadb.binlog import BinlogTarget, archive_binlogs, binlog_dataset, replay_binlogs
from seawall.mariadb.conn import MyConn
from seawall.mariadb.logical import backup_logical
from seawall.mariadb.logical_restore import restore_logical
from seawall.mariadb.physical import backup_physical, restore_physical
from seawall.mariadb.server import chown_to_server_user
from seawall.redis import facts
from seawall.redis.rdb import backup_rdb, restore_to_server
from seawall.vault import Vault, init_vault
from tests.fixtures.datagen_sources import create_shop, populate_redis
from tests.fixtures.sources import MariaDB
from tests.unit.builders import FAST_SCRYPT, PASSPHRASE, SMALL_CHUNKER


@pytest.fixture
def vault(tmp_path) -> Vault:
    return init_vault(f"file://{tmp_path}/vault", PASSPHRASE, scrypt=FAST_SCRYPT, chunker=SMALL_CHUNKER)


@pytest.fixture(scope="module")
def small_shop(mariadb: MariaDB) -> MariaDB:
    create_shop(mariadb.server, "shop", 500, 2000, 2000)
    return mariadb


def _root(server, database: str = "") -> MyConn:
    return MyConn(socket=str(server.socket), user="root", database=database)


def _delete_a_chunk(vault: Vault, stream) -> str:
    """Delete the pack holding a chunk of `stream`; returns the pack's key (restores name it)."""
    chunk = stream.chunks[len(stream.chunks) // 2][0]
    pack = vault.chunk_object(chunk)
    vault.store.delete(pack)
    return pack


def _databases(server) -> set[str]:
    return {r[0] for r in server.execute("SHOW DATABASES")}


def test_logical_restore_missing_a_chunk_drops_what_it_wrote(small_shop, vault):
    manifest = backup_logical(vault, small_shop.dsn("shop"), "mariadb-shop")
    pack = _delete_a_chunk(vault, manifest.stream("table:order items"))
    with pytest.raises(IntegrityError, match=pack):
        restore_logical(vault, manifest, _root(small_shop.server, "shop_broken"))
    assert "shop_broken" not in _databases(small_shop.server)
    small_shop.server.execute("CREATE DATABASE shop_given")  # given empty: emptied again, kept
    with pytest.raises(IntegrityError):
        restore_logical(vault, manifest, _root(small_shop.server, "shop_given"))
    assert not small_shop.server.execute("SHOW TABLES", database="shop_given")
    small_shop.server.execute("CREATE TABLE shop_given.keep (id INT)")
    with pytest.raises(ConfigError, match="not empty"):
        restore_logical(vault, manifest, _root(small_shop.server, "shop_given"))
    assert [r[0] for r in small_shop.server.execute("SHOW TABLES", database="shop_given")] == ["keep"]


def test_physical_restore_missing_a_chunk_removes_the_datadir(small_shop, vault):
    manifest = backup_physical(vault, _root(small_shop.server), "mariadb-server")
    _delete_a_chunk(vault, manifest.streams[0])
    base = Path(tempfile.mkdtemp(prefix="seawall-test-"))
    chown_to_server_user(base)
    try:
        with pytest.raises(IntegrityError, match="missing"):
            restore_physical(vault, manifest, base / "data")
        assert not (base / "data").exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_binlog_missing_from_the_archive_is_named_before_any_write(small_shop, vault):
    small_shop.server.execute("CREATE DATABASE IF NOT EXISTS gap")
    small_shop.server.execute("CREATE TABLE IF NOT EXISTS gap.t (id INT PRIMARY KEY)")
    manifest = backup_logical(vault, small_shop.dsn("gap"), "mariadb-gap")
    for i in range(3):
        small_shop.server.execute(f"INSERT INTO gap.t VALUES ({i})")
        assert archive_binlogs(vault, small_shop.dsn(), "mariadb-gap") is not None
    archives = vault.list_backups(binlog_dataset("mariadb-gap"))
    vault.store.delete(archives[1].key)  # the middle archive run's binlog is lost
    with pytest.raises(IntegrityError, match="misses"):
        replay_binlogs(vault, manifest, _root(small_shop.server, "gap_copy"), BinlogTarget.parse("latest"),
                       source_db="gap")
    assert "gap_copy" not in _databases(small_shop.server)


def test_redis_restore_missing_a_chunk_leaves_the_target_empty(redis_source, redis_target, vault):
    populate_redis(redis_source, 5000, 1200, 10)
    manifest = backup_rdb(vault, redis_source.conn(), "redis-cache")
    _delete_a_chunk(vault, manifest.streams[0])
    with pytest.raises(IntegrityError, match="missing"):
        restore_to_server(vault, manifest, redis_target.conn())
    assert facts.keyspace(redis_target.client()) == {}
    redis_target.client().set("someone's key", "v")
    with pytest.raises(ConfigError, match="not empty"):
        restore_to_server(vault, manifest, redis_target.conn())
