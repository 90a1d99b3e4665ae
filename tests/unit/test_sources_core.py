"""Pure parts of the MariaDB and Redis sources: dump splitting and regrouping, connection strings
(secrets kept out of display and command lines), recovery targets, facts kept across a snapshot."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import blake3
import pytest

from blocks.mariadb import MariaDBSource
from blocks.redis import RedisSource
from seawall.errors import AuthError, ConfigError, RetryableError
from seawall.mariadb.binlog import BinlogTarget
from seawall.mariadb.conn import MyConn, classify_pymysql
from seawall.mariadb.dumpstream import EMPTY_CHECKSUM, Batcher, digest_tables, split_dump, table_name
from seawall.redis import facts
from seawall.redis.conn import RedisConn

DUMP = (b"-- header\nCREATE TABLE `we``ird t\xc3\xa9` (x int);\n"
        b"INSERT INTO `we``ird t\xc3\xa9` VALUES (1,'a;\\nINSERT INTO `x` VALUES (');\n"
        b"INSERT INTO `we``ird t\xc3\xa9` VALUES (2,NULL);\n/*!40000 ALTER TABLE ENABLE KEYS */;\n"
        b"INSERT INTO `b` VALUES (3);\n-- end\n")


def _drain(reader, size=7) -> bytes:
    buf, out = memoryview(bytearray(size)), b""
    while n := reader.readinto(buf):
        out += bytes(buf[:n])
    return out


def test_split_dump_keeps_schema_with_placeholders_and_data_per_table():
    tables = {}
    schema = split_dump(io.BytesIO(DUMP), lambda name, r: tables.__setitem__(name, (_drain(r), r.rows)))
    assert list(tables) == ["we`ird té", "b"]
    assert tables["we`ird té"][1] == 2 and tables["b"] == (b"INSERT INTO `b` VALUES (3);\n", 1)
    assert schema == (b"-- header\nCREATE TABLE `we``ird t\xc3\xa9` (x int);\n-- seawall:data we`ird t\xc3\xa9\n"
                      b"/*!40000 ALTER TABLE ENABLE KEYS */;\n-- seawall:data b\n-- end\n")
    digests = digest_tables(io.BytesIO(DUMP))
    assert digests["b"] == {"rows": 1, "checksum": blake3.blake3(b"INSERT INTO `b` VALUES (3);\n").hexdigest()}
    assert table_name(b"INSERT INTO `a``b` VALUES (1);") == "a`b" and EMPTY_CHECKSUM


@pytest.mark.parametrize("piece", [1, 5, 64, 10_000])
def test_batcher_regroups_rows_into_statements_whatever_the_pieces(piece):
    lines = [f"INSERT INTO `t` VALUES ({i},'x;\\nINSERT INTO `t` VALUES (');\n".encode() for i in range(50)]
    data, out = b"".join(lines), []
    batcher = Batcher("t", out.append, max_statement=300)
    for i in range(0, len(data), piece):
        batcher.feed(data[i:i + piece])
    batcher.close()
    assert all(s.startswith(b"INSERT INTO `t` VALUES (") and s.endswith(b");\n") for s in out)
    assert 1 < len(out) < 50 and b"".join(out).count(b"),(") == 50 - len(out)


def test_mariadb_dsn_keeps_the_password_apart(tmp_path):
    conn = MyConn.parse("mysql://app%20user:p%40ss%20w%23rd@db1:3307/shop")
    assert (conn.user, conn.host, conn.port, conn.database) == ("app user", "db1", 3307, "shop")
    assert "p@ss" not in conn.display() + repr(conn) and conn.password.get_secret_value() == "p@ss w#rd"
    with conn.option_file() as path:
        text = Path(path).read_text()
        assert oct(os.stat(path).st_mode & 0o777) == "0o600" and 'password="p@ss w#rd"' in text
    assert not os.path.exists(path)
    with pytest.raises(ConfigError, match=r"\*\*\*"):
        MyConn.parse("postgres://u:secret@h/db")
    block = MariaDBSource(dsn="mysql://u:hunter2@127.0.0.1/app")
    text = repr(block) + block.model_dump_json() + block.display() + pickle.dumps(block.display()).decode("latin-1")
    assert "hunter2" not in text and block.get_myconn().password.get_secret_value() == "hunter2"


def test_redis_url_keeps_the_password_apart():
    conn = RedisConn.parse("redis://ops:s%3Acret@cache:6380/2")
    assert (conn.user, conn.host, conn.port, conn.db) == ("ops", "cache", 6380, 2)
    assert "cret" not in conn.display() + " ".join(conn.cli_argv()) and conn.cli_env()["REDISCLI_AUTH"] == "s:cret"
    assert RedisConn.parse("unix:///run/redis.sock").cli_argv() == ["-s", "/run/redis.sock"]
    block = RedisSource(url="redis://:hunter2@127.0.0.1:6379/0")
    assert "hunter2" not in repr(block) + block.model_dump_json() + block.display()
    with pytest.raises(ConfigError):
        RedisConn.parse("http://x")


@pytest.mark.parametrize(("error", "family"), [
    ((1045, "Access denied"), AuthError), ((1049, "Unknown database"), ConfigError),
    ((2003, "Can't connect"), RetryableError), ((1213, "Deadlock"), RetryableError),
])
def test_pymysql_errors_are_classified(error, family):
    import pymysql

    assert type(classify_pymysql(pymysql.err.OperationalError(*error), "x")) is family


def test_binlog_targets_parse():
    assert BinlogTarget.parse("latest").kind == "latest"
    t = BinlogTarget.parse("time:2026-11-22T01:00:00+01:00")
    assert t.time.isoformat() == "2026-11-22T00:00:00+00:00"
    p = BinlogTarget.parse("position:mariadb-bin.000002:1234")
    assert (p.file, p.position) == ("mariadb-bin.000002", 1234)
    for bad in ("time:2026-11-22T01:00:00", "position:x", "lsn:0/1"):
        with pytest.raises(ConfigError):
            BinlogTarget.parse(bad)


def test_redis_facts_keep_only_what_held_across_the_snapshot():
    before = {"redis_version": "7", "aof_enabled": False, "keyspace": {"0": 10}, "digest": "d1",
              "sample": {"0": {"aa": "x", "bb": "y"}}}
    same = facts.stable(before, dict(before))
    assert same["keyspace"] == {"0": 10} and same["digest"] == "d1" and same["sample"] == {"0": {"aa": "x", "bb": "y"}}
    moved = facts.stable(before, {**before, "keyspace": {"0": 12}, "digest": "d2", "sample": {"0": {"aa": "x"}}})
    assert moved["keyspace"] is None and moved["keyspace_range"] == {"0": [10, 12]}
    assert moved["digest"] is None and moved["sample"] == {"0": {"aa": "x"}}
