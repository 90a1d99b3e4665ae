"""Per-table row counts and checksums, computed the same way for a dump and for a live database.

The figures are defined on the COPY text that pg_dump writes for a table's data
(`COPY schema.table (col, ...) TO stdout` inside the dump's exported snapshot):

- **rows** = number of data lines. COPY text escapes newlines inside values (`\\n`), so one row is
  exactly one line; the `\\.` end-of-data line pg_dump appends (followed by blank lines) is excluded.
- **checksum** = BLAKE3 (hex) of the data lines, byte for byte as pg_dump wrote them, terminator
  excluded.

A logical backup derives both from the table files pg_dump writes while they stream into the vault,
so they are taken inside the backup's own snapshot by construction and cost no extra table scan.
`table_stats()` recomputes them on a live (typically freshly restored) database with the very
statement pg_dump uses, in a session set up like pg_dump's (DateStyle ISO, IntervalStyle postgres,
extra_float_digits 3, synchronize_seqscans off) plus the settings seawall forces on pg_dump
(TimeZone UTC, bytea_output hex; see `DUMP_SESSION_OPTIONS`), in one REPEATABLE READ snapshot.

Assumption and its limits: the checksum is order sensitive, and a heap is read in physical order.
After `pg_restore` into a new database the heap order of every table equals the dump's row order
(COPY appends rows in file order), so checksums match exactly. They do **not** match on the source
database after rows were updated, deleted or vacuumed (the physical order changed, and so did the
data), after `CLUSTER`/`VACUUM FULL`, or on a table another session writes meanwhile. Row counts do
not depend on order. Money values and other locale-dependent output assume equal `lc_monetary`.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import blake3

from seawall.errors import ConfigError, PermanentError
from seawall.postgres.conn import PgConn, translate_psycopg_errors
from seawall.postgres.idents import QUALIFIED_SQL, split_qualified

#: Server settings (libpq PGOPTIONS) seawall gives pg_dump so its output does not depend on the
#: server's or role's defaults; `table_stats` uses the same values.
DUMP_SESSION_OPTIONS = {"TimeZone": "UTC", "bytea_output": "hex"}
#: Settings pg_dump itself sets on every connection (pg_dump.c `setup_connection`).
PG_DUMP_SESSION = {"DateStyle": "ISO", "IntervalStyle": "postgres", "extra_float_digits": "3",
                   "synchronize_seqscans": "off"}
_TERMINATOR = re.compile(rb"\\\.\n\n*\Z")
_HOLD = 16  # bytes held back so the terminator can be recognised at the end


class CopyDigest:
    """Incremental rows + checksum of COPY text data, with pg_dump's `\\.` terminator excluded.

    Example:
        >>> d = CopyDigest(); d.update(b"1\\ta\\n2\\tb\\n\\\\.\\n\\n\\n"); d.finish()[0]
        2
    """

    def __init__(self) -> None:
        self._hasher = blake3.blake3()
        self._tail = b""
        self._last = b"\n"  # the byte before the tail; start of data counts as a line start
        self._lines = 0

    def _emit(self, data: bytes, end: int | None = None) -> None:
        """Hash and count `data[:end]` without copying it (bytes.count takes bounds)."""
        end = len(data) if end is None else end
        if end > 0:
            self._hasher.update(memoryview(data)[:end])
            self._lines += data.count(b"\n", 0, end)
            self._last = data[end - 1:end]

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Feed the next piece of the data, in order."""
        data = data if isinstance(data, bytes) else bytes(data)
        if len(data) >= _HOLD:
            self._emit(self._tail)
            self._emit(data, len(data) - _HOLD)
            self._tail = data[-_HOLD:]
        else:
            buf = self._tail + data
            self._emit(buf, max(len(buf) - _HOLD, 0))
            self._tail = buf[-_HOLD:]

    def finish(self) -> tuple[int, str]:
        """Return (rows, checksum hex) of everything fed, terminator excluded."""
        tail = self._tail
        match = _TERMINATOR.search(tail)
        if match:
            before = tail[match.start() - 1:match.start()] if match.start() else self._last
            if before == b"\n":
                tail = tail[:match.start()]
        self._emit(tail)
        self._tail = b""
        return self._lines, self._hasher.hexdigest()


def digest_bytes(data: bytes) -> tuple[int, str]:
    """Rows and checksum of a whole COPY text in memory (tests, small tables)."""
    digest = CopyDigest()
    digest.update(data)
    return digest.finish()


def session_settings() -> dict[str, str]:
    """Every setting a stats session needs so its COPY text equals pg_dump's."""
    return {**PG_DUMP_SESSION, **DUMP_SESSION_OPTIONS}


def pgoptions(existing: str = "") -> str:
    """A PGOPTIONS value adding `DUMP_SESSION_OPTIONS` to the user's own (ours win)."""
    ours = " ".join(f"-c {k}={v}" for k, v in DUMP_SESSION_OPTIONS.items())
    return f"{existing} {ours}".strip()


_COLUMNS_SQL = """
SELECT c.oid, n.nspname, c.relname,
       array(SELECT a.attname FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
             ORDER BY a.attnum)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'm', 'f', 'p')
"""


def copy_statement(schema: str, table: str, columns: list[str]):
    """The statement pg_dump runs for a table's data: an explicit column list, generated columns left out."""
    from psycopg import sql

    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    return sql.SQL("COPY {} ({}) TO STDOUT").format(sql.Identifier(schema, table), cols)


def _setup_session(pg) -> None:
    from psycopg import sql

    for name, value in session_settings().items():
        pg.execute(sql.SQL("SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
    encoding = pg.execute("SELECT pg_encoding_to_char(encoding) FROM pg_database "
                          "WHERE datname = current_database()").fetchone()[0]
    pg.execute(sql.SQL("SET client_encoding = {}").format(sql.Literal(encoding)))


def _table_columns(pg, name: str) -> tuple[str, str, list[str]]:
    try:
        row = pg.execute(_COLUMNS_SQL, split_qualified(name)).fetchone()
    except ValueError as exc:
        raise ConfigError(f"invalid table name {name!r}: {exc}") from None
    if row is None:
        raise ConfigError(f"table {name} not found in {pg.info.dbname}", hint="was the restore complete?")
    _, schema, table, columns = row
    return schema, table, list(columns)


def _psql_digest(conn: PgConn, encoding: str, snapshot: str, statement: str) -> tuple[int, str]:
    """Run COPY through psql and digest its output in large reads.

    psycopg hands COPY data over one row per Python call (libpq returns a message per row), which
    costs ~6x more than letting psql do that loop in C and reading its stdout in 1 MiB blocks.
    """
    from seawall.postgres import binaries

    env = conn.tool_env()
    env["PGOPTIONS"] = " ".join(f"-c {k}={v}" for k, v in session_settings().items())
    env["PGCLIENTENCODING"] = encoding
    argv = [binaries.tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", conn.conninfo,
            "-c", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            "-c", f"SET TRANSACTION SNAPSHOT '{snapshot}'", "-c", statement, "-c", "COMMIT"]
    digest = CopyDigest()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as proc:
        for block in iter(lambda: proc.stdout.read(1 << 20), b""):
            digest.update(block)
        err = proc.stderr.read().decode(errors="replace").strip()
    if proc.returncode != 0:
        raise PermanentError(f"reading {statement[:80]} failed: {err.splitlines()[-1] if err else proc.returncode}")
    return digest.finish()


def table_stats(conn: PgConn | str, tables: Iterable[str], *, jobs: int = 2) -> dict[str, dict[str, int | str]]:
    """Rows and checksum of each `schema.table` in one REPEATABLE READ snapshot of a live database.

    Args:
        conn: the database to read (a PgConn or a conninfo string).
        tables: keys as in a logical manifest's `source["tables"]` (`seawall.postgres.idents`).
        jobs: tables read in parallel, all in the same exported snapshot.

    Returns:
        `{table: {"rows": int, "checksum": str}}`.

    Example:
        >>> table_stats(PgConn("dbname=restored"), ["public.orders"])  # doctest: +SKIP
        {'public.orders': {'rows': 1200, 'checksum': '9f2c...'}}
    """
    conn = conn if isinstance(conn, PgConn) else PgConn(conn)
    tables = list(tables)
    with conn.connect() as pg, translate_psycopg_errors(f"reading table checksums from {conn.display()}"):
        _setup_session(pg)
        pg.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = pg.execute("SELECT pg_export_snapshot()").fetchone()[0]
        encoding = pg.execute("SHOW client_encoding").fetchone()[0]
        statements = {name: copy_statement(*_table_columns(pg, name)).as_string(pg) for name in tables}
        with ThreadPoolExecutor(max(1, jobs)) as pool:  # the snapshot stays exported while they run
            results = pool.map(lambda n: _psql_digest(conn, encoding, snapshot, statements[n]), tables)
            out = {name: {"rows": rows, "checksum": checksum} for name, (rows, checksum) in zip(tables, results,
                                                                                                  strict=True)}
        pg.execute("COMMIT")
    return out


# ---- schema facts (recorded in logical manifests, compared after a restore) --------------------

_FACTS_SQL = """
SELECT current_database(), current_setting('server_version'), pg_encoding_to_char(d.encoding),
       d.datcollate, d.datctype
FROM pg_database d WHERE d.datname = current_database()
"""
_SCHEMA_COLUMNS_SQL = f"""
SELECT {QUALIFIED_SQL}, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY 1, a.attnum
"""
_INDEXES_SQL = f"""
SELECT {QUALIFIED_SQL}, i.relname, pg_get_indexdef(i.oid)
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY 1, 2
"""


def server_facts(pg) -> dict[str, Any]:
    """Database name, version, encoding/locale and system identifier (None without the privilege)."""
    dbname, version, encoding, collate, ctype = pg.execute(_FACTS_SQL).fetchone()
    facts = {"dbname": dbname, "server_version": version, "encoding": encoding,
             "lc_collate": collate, "lc_ctype": ctype, "system_identifier": None}
    import psycopg

    try:
        with pg.transaction():
            facts["system_identifier"] = str(pg.execute(
                "SELECT system_identifier FROM pg_control_system()").fetchone()[0])
    except psycopg.errors.InsufficientPrivilege:  # needs superuser or pg_monitor: the fact is optional
        pass
    return facts


def schema_facts(pg) -> tuple[dict[str, list], dict[str, list]]:
    """Columns `[name, type, not_null]` and indexes `[name, definition]` per `schema.table`."""
    columns: dict[str, list] = {}
    for table, name, typ, not_null in pg.execute(_SCHEMA_COLUMNS_SQL):
        columns.setdefault(table, []).append([name, typ, bool(not_null)])
    indexes: dict[str, list] = {}
    for table, name, definition in pg.execute(_INDEXES_SQL):
        indexes.setdefault(table, []).append([name, definition])
    return columns, indexes
