"""B-tree index verification with PostgreSQL's `amcheck` (contrib) on a restored copy.

`bt_index_check(index, heapallindexed => true)` checks each B-tree's structure and that every heap
tuple has its index entry (on PostgreSQL 16+ also `checkunique`: no duplicate keys in a unique
index); it takes only an AccessShareLock, so it runs beside the other checks.
One result per table (all of the table's B-tree indexes), so a failure names the table.
See https://www.postgresql.org/docs/15/amcheck.html.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from seawall.checks import CheckResult, error, result
from seawall.postgres.conn import PgConn, translate_psycopg_errors
from seawall.postgres.idents import QUALIFIED_SQL

NAME = "amcheck"
_BTREE_INDEXES = f"""
SELECT {QUALIFIED_SQL}, i.oid::regclass::text, i.oid,
       pg_relation_size(c.oid) + pg_relation_size(i.oid)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am a ON a.oid = i.relam
WHERE a.amname = 'btree' AND x.indisvalid AND x.indisready AND i.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY 1, 2
"""


def btree_indexes(conn: PgConn) -> dict[str, list[tuple[str, int]]]:
    """`{schema.table: [(index name, oid)]}` of the user B-tree indexes, costliest table first.

    Installs amcheck if needed. A heapallindexed check reads the whole heap once per index, so a
    table costs about (heap + index size) per index: workers take the costliest tables first, so
    the biggest one does not start last and run alone.
    """
    with conn.connect() as pg, translate_psycopg_errors(f"preparing amcheck in {conn.display()}"):
        pg.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        out: dict[str, list[tuple[str, int]]] = {}
        cost: dict[str, int] = {}
        for table, index, oid, size in pg.execute(_BTREE_INDEXES):
            out.setdefault(table, []).append((index, oid))
            cost[table] = cost.get(table, 0) + size
        return {t: out[t] for t in sorted(out, key=lambda t: -cost[t])}


def check_sql(server_version: int) -> str:
    """The `bt_index_check` call for a server: `checkunique` (PostgreSQL 16+, amcheck 1.4) also
    re-checks that a unique index holds no duplicate live keys."""
    unique = ", checkunique => true" if server_version >= 160000 else ""
    return f"SELECT bt_index_check(index => %s::regclass, heapallindexed => true{unique})"


def _check_table(conn: PgConn, table: str, indexes: list[tuple[str, int]], label: str) -> CheckResult:
    import psycopg

    start = time.monotonic()
    try:
        with conn.connect() as pg:
            sql = check_sql(pg.info.server_version)
            for name, oid in indexes:
                try:
                    pg.execute(sql, (oid,))
                except psycopg.InternalError as exc:  # class XX: XX001 data / XX002 index corrupted
                    return result(NAME, label, False, f"index {name}: {str(exc).strip().splitlines()[0]}",
                                  time.monotonic() - start)
    except Exception as exc:
        return error(NAME, label, exc, time.monotonic() - start)
    return result(NAME, label, True, f"{len(indexes)} btree index(es) ok (heapallindexed)", time.monotonic() - start)


def check_btree_indexes(conn: PgConn, *, prefix: str = "", workers: int = 2) -> list[CheckResult]:
    """`bt_index_check(..., heapallindexed => true)` on every user B-tree index; one result per table.

    Args:
        conn: the restored database.
        prefix: put before table names in results (`db/` when a cluster has several databases).
        workers: tables checked in parallel.

    Example:
        >>> check_btree_indexes(PgConn("host=/tmp/s port=5440 dbname=shop"))  # doctest: +SKIP
    """
    tables = btree_indexes(conn)
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="seawall-amcheck") as pool:
        futures = {t: pool.submit(_check_table, conn, t, idx, prefix + t) for t, idx in tables.items()}
        return [futures[t].result() for t in sorted(futures)]  # reported by table name
