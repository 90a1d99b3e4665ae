"""Table checks of a restored logical backup against its manifest: rows + checksum, and schema.

The manifest holds, per table, the row count and checksum pg_dump's own snapshot produced
(`seawall.postgres.tablestats`), its columns `[name, type, not_null]` and its indexes
`[name, definition]`. Both checks report one result per table, so a failure names the table.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from seawall.checks import CheckResult, error, result
from seawall.manifest import Manifest
from seawall.postgres.conn import PgConn, translate_psycopg_errors
from seawall.postgres.idents import QUALIFIED_SQL
from seawall.postgres.tablestats import schema_facts, table_stats

ROWS = "rows-checksum"
SCHEMA = "schema"


def recorded_tables(manifest: Manifest) -> dict[str, dict[str, Any]]:
    """`{schema.table: {rows, checksum, columns, ...}}` as recorded by the backup."""
    return manifest.source.get("tables") or {}


def _one_table(conn: PgConn, table: str, expected: dict[str, Any]) -> CheckResult:
    start = time.monotonic()
    try:
        found = table_stats(conn, [table])[table]
    except Exception as exc:  # a missing table or a lost connection: this table's check cannot run
        return error(ROWS, table, exc, time.monotonic() - start)
    rows_ok = found["rows"] == expected["rows"]
    sum_ok = found["checksum"] == expected["checksum"]
    if rows_ok and sum_ok:
        detail = f"{found['rows']} rows, checksum matches"
    else:
        parts = [] if rows_ok else [f"rows {found['rows']} != recorded {expected['rows']}"]
        parts += [] if sum_ok else [f"checksum {str(found['checksum'])[:16]}… != recorded {expected['checksum'][:16]}…"]
        detail = "; ".join(parts)
    return result(ROWS, table, rows_ok and sum_ok, detail, time.monotonic() - start)


_TABLE_SIZES = f"""
SELECT {QUALIFIED_SQL}, pg_table_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 'f', 'p')
"""


def largest_first(conn: PgConn, tables: list[str]) -> list[str]:
    """`tables` by size on disk, largest first (unknown ones last, in their given order).

    Workers pick tables in this order, so the biggest one does not start last and run alone
    while the other workers idle (longest-processing-time-first scheduling).
    """
    with conn.connect() as pg, translate_psycopg_errors(f"reading table sizes of {conn.display()}"):
        sizes = dict(pg.execute(_TABLE_SIZES).fetchall())
    return sorted(tables, key=lambda t: -(sizes.get(t) or 0))


def check_rows_checksums(conn: PgConn, manifest: Manifest, *, workers: int = 2) -> list[CheckResult]:
    """Recompute every table's rows and checksum on the restored database; one result per table.

    Tables are read in parallel (`workers` connections, each its own snapshot: the copy is idle),
    largest first; results come in the manifest's order.

    Example:
        >>> check_rows_checksums(PgConn("host=/tmp/s port=5440 dbname=shop"), manifest)  # doctest: +SKIP
    """
    tables = recorded_tables(manifest)
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="seawall-rows") as pool:
        futures = {t: pool.submit(_one_table, conn, t, tables[t]) for t in largest_first(conn, list(tables))}
        return [futures[t].result() for t in tables]


def _column_diff(expected: list[list], found: list[list]) -> list[str]:
    problems = []
    want = {c[0]: c for c in expected}
    have = {c[0]: c for c in found}
    problems += [f"column {n} missing" for n in want if n not in have]
    problems += [f"column {n} not in the backup" for n in have if n not in want]
    for name in want.keys() & have.keys():
        if want[name][1] != have[name][1]:
            problems.append(f"column {name} type {have[name][1]} != recorded {want[name][1]}")
        if bool(want[name][2]) != bool(have[name][2]):
            problems.append(f"column {name} not-null {have[name][2]} != recorded {want[name][2]}")
    if problems:
        return sorted(problems)
    return ["column order differs"] if [c[0] for c in expected] != [c[0] for c in found] else []


def _index_diff(expected: list[list], found: list[list]) -> list[str]:
    want, have = dict(map(tuple, expected)), dict(map(tuple, found))
    problems = [f"index {n} missing" for n in want if n not in have]
    problems += [f"index {n} not in the backup" for n in have if n not in want]
    problems += [f"index {n} definition differs" for n in want.keys() & have.keys() if want[n] != have[n]]
    return sorted(problems)


def read_schema(conn: PgConn) -> tuple[dict[str, list], dict[str, list]]:
    """Columns and indexes per table of a live database (same query as the backup used)."""
    with conn.connect() as pg, translate_psycopg_errors(f"reading the schema of {conn.display()}"):
        return schema_facts(pg)


def check_schema(conn: PgConn, manifest: Manifest) -> list[CheckResult]:
    """Columns (name, type, not-null, order) and indexes of every table against the manifest.

    Example:
        >>> check_schema(PgConn("dbname=shop_check"), manifest)  # doctest: +SKIP
    """
    start = time.monotonic()
    columns, indexes = read_schema(conn)
    recorded_indexes = manifest.source.get("indexes") or {}
    out = []
    for table, facts in recorded_tables(manifest).items():
        if table not in columns:
            out.append(result(SCHEMA, table, False, "table missing from the restored database"))
            continue
        problems = _column_diff(facts.get("columns") or [], columns[table])
        problems += _index_diff(recorded_indexes.get(table) or [], indexes.get(table) or [])
        detail = "; ".join(problems) or (f"{len(columns[table])} columns, "
                                         f"{len(indexes.get(table) or [])} indexes match")
        out.append(result(SCHEMA, table, not problems, detail))
    share = (time.monotonic() - start) / max(1, len(out))
    for r in out:
        r.seconds = round(share, 3)
    return out
