"""Logical MariaDB/MySQL backups: `mariadb-dump` in one consistent snapshot, each table streamed
into the vault as it is dumped.

`mariadb-dump --single-transaction` reads every InnoDB table inside one REPEATABLE READ snapshot
(`START TRANSACTION WITH CONSISTENT SNAPSHOT`). Its stdout is split as it flows
(`seawall.mariadb.dumpstream`): one vault stream per table's data, one for the schema (tables,
triggers, views, routines, events), no local spool. With binary logging on, `--master-data=2`
records the binlog file and position of that same snapshot: the start point of a point-in-time
restore (`seawall.mariadb.binlog`). Compression is ours (zstd in the vault).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seawall.errors import AuthError, ConfigError, PermanentError, RetryableError
from seawall.lifecycle import recording
from seawall.manifest import BackupStatus, Manifest, StreamRef, new_manifest
from seawall.mariadb.conn import MyConn, translate_pymysql_errors
from seawall.mariadb.dumpstream import DATA_OPTIONS, EMPTY_CHECKSUM, TableReader, split_dump
from seawall.mariadb.server import tool
from seawall.streams import ChunkWriter
from seawall.vault import Vault

KIND = "mariadb-logical"
SCHEMA_STREAM = "schema.sql"
TABLE_PREFIX = "table:"
Progress = Callable[[int], None]
_MASTER = re.compile(rb"CHANGE MASTER TO MASTER_LOG_FILE='([^']+)', MASTER_LOG_POS=(\d+)")
_GTID = re.compile(rb"gtid_slave_pos='([^']*)'")
_CONNECT_TROUBLE = ("can't connect", "lost connection", "server has gone away", "unknown mysql server host")


def tool_error(tool_name: str, stderr: str, what: str) -> Exception:
    """One line from a failed MariaDB tool; refused credentials are AuthError, lost servers retryable."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    last = next((ln for ln in reversed(lines) if "error" in ln.lower()), lines[-1] if lines else "no error output")
    message = f"{tool_name} failed {what}: {last}"
    text = stderr.lower()
    if "access denied" in text:
        return AuthError(message, hint="check the user, password and the account's privileges")
    if "unknown database" in text:
        return ConfigError(message, hint="check the database name")
    if any(marker in text for marker in _CONNECT_TROUBLE):
        return RetryableError(message)
    return PermanentError(message)


# ---- source facts -------------------------------------------------------------------------------
_COLUMNS_SQL = """
SELECT c.TABLE_NAME, c.COLUMN_NAME, c.COLUMN_TYPE, c.IS_NULLABLE = 'NO'
FROM information_schema.COLUMNS c JOIN information_schema.TABLES t
  ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
WHERE c.TABLE_SCHEMA = %s AND t.TABLE_TYPE = 'BASE TABLE'
ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION
"""


def server_facts(conn: MyConn) -> dict[str, Any]:
    """Version, binary logging, the database's character set and its tables' columns.

    Also the check that the database exists and the credentials work, before anything is written.
    """
    if not conn.database:
        raise ConfigError(f"{conn.display()} names no database", hint="add /DATABASE to the DSN")
    with conn.connect() as my, my.cursor() as cur, translate_pymysql_errors(f"reading facts of {conn.display()}"):
        cur.execute("SELECT VERSION(), @@log_bin, @@server_id, @@binlog_format, DEFAULT_CHARACTER_SET_NAME, "
                    "DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
                    (conn.database,))
        row = cur.fetchone()
        if row is None:
            raise ConfigError(f"database {conn.database} does not exist on {conn.display()}",
                              hint="check the database name")
        cur.execute(_COLUMNS_SQL, (conn.database,))
        columns: dict[str, list] = {}
        for table, name, typ, not_null in cur.fetchall():
            columns.setdefault(table, []).append([name, typ, bool(not_null)])
    return {"database": conn.database, "server_version": row[0], "log_bin": bool(row[1]), "server_id": row[2],
            "binlog_format": row[3], "charset": row[4], "collation": row[5], "columns": columns}


def dump_argv(database: str, *, master_data: bool, tables: list[str] | None = None) -> list[str]:
    """mariadb-dump's command line (`run_tool` adds the option file with the credentials)."""
    argv = [tool("mariadb-dump"), "--single-transaction", "--quick",
            "--routines", "--events", "--triggers", "--skip-dump-date", *DATA_OPTIONS]
    argv += ["--master-data=2"] if master_data else []
    return [*argv, database, *(tables or [])]


def binlog_position(schema: bytes) -> dict[str, Any] | None:
    """The snapshot's binlog file/position (and GTID) from the dump's `--master-data=2` comment."""
    match = _MASTER.search(schema)
    if not match:
        return None
    gtid = _GTID.search(schema)
    return {"file": match[1].decode(), "position": int(match[2]), "gtid": gtid[1].decode() if gtid else None}


# ---- the backup ---------------------------------------------------------------------------------
def backup_logical(vault: Vault, conn: MyConn | str, dataset: str, *, backup_id: str | None = None,
                   parent: Manifest | None = None, progress: Progress | None = None,
                   workers: int = 3) -> Manifest:
    """Dump one database as a new `mariadb-logical` backup; returns the DONE manifest.

    Args:
        vault: the opened vault to write into.
        conn: the database to dump (`MyConn` or a `mysql://` DSN).
        dataset: the dataset name the backup is filed under.
        backup_id: use this id instead of a new one (retries of a task).
        parent: the previous backup of the dataset (recorded; deduplication needs nothing else).
        progress: called with byte counts as data is stored.
        workers: chunk upload threads.

    Example:
        >>> backup_logical(vault, "mysql://backup@db1/shop", "mariadb-shop")  # doctest: +SKIP
    """
    conn = conn if isinstance(conn, MyConn) else MyConn.parse(conn)
    facts = server_facts(conn)  # bad credentials / a missing database fail here, before any write
    columns = facts.pop("columns")
    manifest = new_manifest(dataset, KIND, source=facts)
    if backup_id:
        manifest.backup_id = backup_id
    manifest.parent = parent.backup_id if parent else None
    with recording(vault, manifest) as phase:
        manifest.transition(BackupStatus.UPLOADING)
        vault.known_chunks(refresh=True)
        phase("running mariadb-dump")
        with ChunkWriter(vault, workers=workers) as writer:
            tables, schema = _dump_into(writer, conn, facts["log_bin"], progress)
            manifest.streams = [writer.write_bytes(schema, SCHEMA_STREAM), *(ref for ref, _ in tables.values())]
            phase("storing chunks")
            writer.fill_stats(manifest.stats)
        manifest.source["binlog"] = binlog_position(schema)
        manifest.source["tables"] = table_facts(tables, columns)
        _fill_stats(manifest)
    return manifest


def table_facts(tables: dict[str, tuple[StreamRef, int]], columns: dict[str, list]) -> dict[str, dict]:
    """Rows, checksum and columns of every base table (tables without rows have no data stream)."""
    out = {name: {"rows": 0, "checksum": EMPTY_CHECKSUM, "columns": cols} for name, cols in columns.items()}
    for name, (ref, rows) in tables.items():
        out[name] = {"rows": rows, "checksum": ref.hash, "columns": columns.get(name, [])}
    return dict(sorted(out.items()))


def _fill_stats(manifest: Manifest) -> None:
    stats = manifest.stats
    stats.files = len(manifest.streams)
    stats.bytes_total = stats.bytes_read = sum(s.size for s in manifest.streams)
    stats.chunks_total = sum(len(s.chunks) for s in manifest.streams)


def _dump_into(writer: ChunkWriter, conn: MyConn, master_data: bool, progress: Progress | None):
    """Run mariadb-dump, storing each table's data as it comes; returns ({table: (ref, rows)}, schema)."""
    tables: dict[str, tuple[StreamRef, int]] = {}

    def store(name: str, reader: TableReader) -> None:
        tables[name] = (writer.write(reader, TABLE_PREFIX + name, progress=progress), reader.rows)

    argv = dump_argv(conn.database, master_data=master_data)
    schema = run_tool(argv, conn, "dumping", lambda out: split_dump(out, store))
    return tables, schema


def run_tool(argv: list[str], conn: MyConn, what: str, consume: Callable[[Any], Any]) -> Any:
    """Run a client tool with `conn`'s option file and hand its stdout to `consume`; errors translated.

    The credentials go in as `--defaults-extra-file` (it must be the first option), never as arguments.
    """
    with conn.option_file() as opts, tempfile.TemporaryFile() as err:
        argv = [argv[0], f"--defaults-extra-file={opts}", *argv[1:]]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        try:
            out = consume(proc.stdout)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        proc.stdout.close()
        proc.wait()
        if proc.returncode != 0:
            err.seek(0)
            raise tool_error(Path(argv[0]).name, err.read().decode(errors="replace"), f"{what} {conn.display()}")
    return out


def feed_tool(argv: list[str], feed: Callable[[Any], None]) -> tuple[int, str]:
    """Run `argv` with `feed` writing its stdin (the counterpart of `run_tool`); returns (exit code, stderr).

    A tool that stops reading (BrokenPipeError) ends the feed: its own exit code and stderr say why.
    """
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        try:
            feed(proc.stdin)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        proc.wait()
        err.seek(0)
        return proc.returncode, err.read().decode(errors="replace")
