"""Restoring a logical MariaDB backup: the schema and each table's data streamed from the vault
into one `mariadb` client, then every table's rows and checksum compared with the manifest.

The schema stream is replayed line by line; at each `-- seawall:data <table>` placeholder the
table's data is streamed from the vault, its one-row INSERTs regrouped into multi-row statements
(`dumpstream.Batcher`) so the load runs at bulk speed. The dump's own session settings (foreign
key and unique checks off, UTC) apply, and triggers are created after their table's data, as
`mariadb-dump` ordered them.

The target database must be new or empty. A restore that fails leaves nothing that looks usable:
a database it created is dropped, an empty one it was given is emptied again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from seawall.errors import ConfigError, IntegrityError
from seawall.manifest import BackupStatus, Manifest
from seawall.mariadb.conn import MyConn, translate_pymysql_errors
from seawall.mariadb.dumpstream import DATA_OPTIONS, EMPTY_CHECKSUM, PLACEHOLDER, Batcher, digest_tables
from seawall.mariadb.logical import KIND, SCHEMA_STREAM, TABLE_PREFIX, feed_tool, run_tool, tool_error
from seawall.mariadb.server import tool
from seawall.streams import ChunkReader
from seawall.tablecheck import TableCheck
from seawall.vault import Vault

Progress = Callable[[int], None]


# ---- target database ----------------------------------------------------------------------------
def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def prepare_target(target: MyConn, source: dict[str, Any]) -> bool:
    """Create the target database if missing (True), or check that it is empty (False).

    Raises:
        ConfigError: no database named, or the database holds tables, views or routines.
    """
    db = target.database
    if not db:
        raise ConfigError(f"restore target {target.display()} names no database", hint="add /DATABASE to the DSN")
    with target.connect(database="") as my, my.cursor() as cur, \
            translate_pymysql_errors(f"inspecting {target.display()}"):
        cur.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (db,))
        if not cur.fetchone()[0]:
            charset = f" CHARACTER SET {source['charset']} COLLATE {source['collation']}" \
                if source.get("charset") else ""
            cur.execute(f"CREATE DATABASE {_quote(db)}{charset}")
            return True
        cur.execute("SELECT (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s) + "
                    "(SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s)", (db, db))
        objects = cur.fetchone()[0]
    if objects:
        raise ConfigError(f"database {db} on {target.display()} is not empty ({objects} tables/routines)",
                          hint="restore into a new or empty database")
    return False


def discard_target(target: MyConn, created: bool, source: dict[str, Any]) -> None:
    """After a failed restore: drop the database we created, or empty the one we were given."""
    db = _quote(target.database)
    with target.connect(database="") as my, my.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {db}")
        if not created:
            charset = f" CHARACTER SET {source['charset']}" if source.get("charset") else ""
            cur.execute(f"CREATE DATABASE {db}{charset}")


# ---- feeding the client -------------------------------------------------------------------------
def _feed(stdin, vault: Vault, manifest: Manifest, progress: Progress | None) -> None:
    with ChunkReader(vault) as reader:
        schema = reader.read_stream(manifest.stream(SCHEMA_STREAM))
        for line in schema.splitlines(keepends=True):
            if not line.startswith(PLACEHOLDER):
                stdin.write(line)
                continue
            table = line[len(PLACEHOLDER):].rstrip(b"\n").decode("utf-8", "surrogateescape")
            batcher = Batcher(table, stdin.write)
            for data in reader.iter_stream(manifest.stream(TABLE_PREFIX + table)):
                batcher.feed(data)
                if progress:
                    progress(len(data))
            batcher.close()


def _run_client(target: MyConn, feed: Callable[[Any], None]) -> None:
    argv = [tool("mariadb"), "--batch", "--binary-mode", "--default-character-set=utf8mb4", "--max-allowed-packet=64M",
            f"--database={target.database}"]
    with target.option_file() as opts:  # credentials as the first option, never as arguments
        code, err = feed_tool([argv[0], f"--defaults-extra-file={opts}", *argv[1:]], feed)
    if code != 0:
        raise tool_error("mariadb", err, f"restoring into {target.display()}")


def restore_logical(vault: Vault, manifest: Manifest, target: MyConn | str, *, progress: Progress | None = None,
                    verify: bool = True) -> list[TableCheck]:
    """Restore a `mariadb-logical` backup into `target`'s (new or empty) database and verify it.

    Args:
        vault: the opened vault holding the backup.
        manifest: a DONE `mariadb-logical` manifest.
        target: the database to restore into (`MyConn` or `mysql://` DSN); created when missing.
        progress: called with byte counts as data is read from the vault.
        verify: compare every table's rows and checksum with the manifest afterwards.

    Returns:
        One TableCheck per table (empty when `verify` is False). A mismatch raises IntegrityError.

    Example:
        >>> restore_logical(vault, manifest, "mysql://root@scratch/shop_check")  # doctest: +SKIP
    """
    target = target if isinstance(target, MyConn) else MyConn.parse(target)
    if manifest.kind != KIND or manifest.status != BackupStatus.DONE:
        raise ConfigError(f"backup {manifest.backup_id} is a {manifest.status} {manifest.kind} backup, "
                          f"not a complete {KIND} one")
    created = prepare_target(target, manifest.source)
    try:
        _run_client(target, lambda stdin: _feed(stdin, vault, manifest, progress))
        return verify_tables(target, manifest) if verify else []
    except BaseException:
        discard_target(target, created, manifest.source)
        raise


# ---- verification -------------------------------------------------------------------------------
def table_digests(conn: MyConn, tables: list[str] | None = None) -> dict[str, dict]:
    """`{table: {rows, checksum}}` of a live database, computed exactly as a backup records them.

    Tables without rows do not appear (mariadb-dump writes no data lines for them).
    """
    argv = [tool("mariadb-dump"), "--single-transaction", "--quick", "--no-create-info", "--skip-triggers",
            *DATA_OPTIONS, conn.database, *(tables or [])]
    return run_tool(argv, conn, "reading table checksums of", digest_tables)


def verify_tables(target: MyConn, manifest: Manifest) -> list[TableCheck]:
    """Compare each table's rows and checksum on `target` with the manifest; raise on the first difference."""
    recorded: dict[str, dict] = manifest.source.get("tables", {})
    found = table_digests(target)
    empty = {"rows": 0, "checksum": EMPTY_CHECKSUM}
    checks = [TableCheck(t, r["rows"], found.get(t, empty)["rows"], r["checksum"], found.get(t, empty)["checksum"])
              for t, r in recorded.items()]
    bad = next((c for c in checks if not c.ok), None)
    if bad is not None:
        raise IntegrityError(f"restored table {bad.table} differs from backup {manifest.backup_id}: "
                             f"{bad.rows_actual} rows (recorded {bad.rows_expected}), checksum "
                             f"{str(bad.checksum_actual)[:16]} (recorded {bad.checksum_expected[:16]})")
    return checks


