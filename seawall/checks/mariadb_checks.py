"""Checks of a restored MariaDB copy: rows + checksums, CHECK TABLE, Great Expectations suites.

See `seawall.checks.sources` for which check runs on which backup kind.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from seawall.checks import CheckResult, clip, result
from seawall.checks.gx import BUILTIN, GxRunner, builtin_expectations, load_user_suites
from seawall.mariadb.conn import MyConn, translate_pymysql_errors

_SYSTEM = {"mysql", "information_schema", "performance_schema", "sys"}


def user_databases(conn: MyConn) -> list[str]:
    with conn.connect(database="") as my, my.cursor() as cur, translate_pymysql_errors(f"listing {conn.display()}"):
        cur.execute("SHOW DATABASES")
        return sorted(r[0] for r in cur.fetchall() if r[0] not in _SYSTEM)


def _base_tables(conn: MyConn, db: str) -> dict[str, list]:
    """`{table: [[column, type, not_null], ...]}` of a database's base tables."""
    from seawall.mariadb.logical import _COLUMNS_SQL

    with conn.connect(database="") as my, my.cursor() as cur, translate_pymysql_errors(f"reading {db}"):
        cur.execute(_COLUMNS_SQL, (db,))
        out: dict[str, list] = {}
        for table, name, typ, not_null in cur.fetchall():
            out.setdefault(table, []).append([name, typ, bool(not_null)])
    return out


def rows_checksums(conn: MyConn, manifest) -> list[CheckResult]:
    """Every table's rows and checksum against the manifest (one mariadb-dump of the copy)."""
    from seawall.mariadb.dumpstream import EMPTY_CHECKSUM
    from seawall.mariadb.logical_restore import table_digests

    start = time.monotonic()
    found = table_digests(conn)
    share = (time.monotonic() - start) / max(1, len(manifest.source.get("tables") or {}))
    out = []
    for table, rec in (manifest.source.get("tables") or {}).items():
        got = found.get(table, {"rows": 0, "checksum": EMPTY_CHECKSUM})
        ok = got["rows"] == rec["rows"] and got["checksum"] == rec["checksum"]
        detail = f"{got['rows']} rows, checksum matches" if ok else \
            f"rows {got['rows']} (recorded {rec['rows']}), checksum {got['checksum'][:16]}… " \
            f"(recorded {rec['checksum'][:16]}…)"
        out.append(result("rows-checksum", table, ok, detail, share))
    return out


def check_tables(conn: MyConn, databases: list[str]) -> list[CheckResult]:
    """`CHECK TABLE ... EXTENDED` on every base table; one result per table."""
    out = []
    with conn.connect(database="") as my, my.cursor() as cur, translate_pymysql_errors(f"checking {conn.display()}"):
        for db in databases:
            for table in _base_tables(conn, db):
                start = time.monotonic()
                cur.execute(f"CHECK TABLE `{db.replace('`', '``')}`.`{table.replace('`', '``')}` EXTENDED")
                rows = cur.fetchall()
                status = [r[3] for r in rows if r[2] in ("status", "error")]
                ok = bool(status) and status[-1] == "OK" and not any(r[2] == "error" for r in rows)
                label = f"{db}.{table}" if len(databases) > 1 else table
                out.append(result("check-table", label, ok, "; ".join(f"{r[2]}: {r[3]}" for r in rows),
                                  time.monotonic() - start))
    return out


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class MariaGxRunner(GxRunner):
    """GxRunner over SQLAlchemy's `mysql+pymysql` dialect; each table is read through a query asset
    quoted with backticks (GX's table assets leave spaces and quotes in names unquoted)."""

    def __init__(self, conn: MyConn, label_prefix: str = ""):
        super().__init__(conn, label_prefix)  # type: ignore[arg-type]
        self._parts: dict[str, tuple[str, str]] = {}

    def validate_table(self, db: str, table: str, expectations: list[dict[str, Any]], check: str) -> CheckResult:
        key = f"{db}.{table}"
        self._parts[key] = (db, table)
        return self.validate(key, expectations, check)

    def _batch_definition(self, table: str):
        if table not in self._batches:
            db, name = self._parts[table]
            asset = self._source.add_query_asset(name=f"t{len(self._batches)}",
                                                 query=f"SELECT * FROM {_q(db)}.{_q(name)}")
            self._batches[table] = asset.add_batch_definition_whole_table("whole-table")
        return self._batches[table]

    def _exists(self, table: str) -> bool:
        db, name = self._parts[table]
        with self.conn.connect(database="") as my, my.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                        (db, name))
            return bool(cur.fetchone()[0])

    def _ensure_source(self) -> None:
        if self._source is None:
            from seawall.checks.gx import _context

            self._context = _context()
            self._source = self._context.data_sources.add_sql(name="seawall-scratch",
                                                               connection_string=sqlalchemy_url(self.conn))


def sqlalchemy_url(conn: MyConn) -> str:
    from sqlalchemy.engine import URL

    query = {"charset": "utf8mb4"} | ({"unix_socket": conn.socket} if conn.socket else {})
    url = URL.create("mysql+pymysql", username=conn.user,
                     password=conn.password.get_secret_value() if conn.password else None,
                     host="localhost" if conn.socket else conn.host, port=None if conn.socket else conn.port,
                     database=conn.database or None, query=query)
    return url.render_as_string(hide_password=False)


def gx_builtin(conn: MyConn, manifest, databases: list[str]) -> list[CheckResult]:
    """Row count (logical: as recorded) and ordered columns of every table; physical copies also get
    NOT NULL scans (they have no row-level comparison)."""
    logical = manifest.kind == "mariadb-logical"
    runner = MariaGxRunner(conn)
    out = []
    for db in databases:
        tables: dict[str, Any] = manifest.source.get("tables") if logical else \
            {t: {"columns": cols} for t, cols in _base_tables(conn, db).items()}
        for table, facts in tables.items():
            exps = builtin_expectations(facts.get("columns") or [], [], facts.get("rows"), data_scans=not logical)
            res = runner.validate_table(db, table, exps, BUILTIN)
            res.table = table if len(databases) == 1 else f"{db}.{table}"
            out.append(res)
    return out


def gx_user(conn: MyConn, folder: str, databases: list[str]) -> list[CheckResult]:
    """Every user suite in `folder` on its table (`meta.table`, or the file name `[db.]table.json`)."""
    runner = MariaGxRunner(conn)
    out = []
    for path, raw, problem in load_user_suites(folder):
        name = f"gx:{Path(path).name.removesuffix('.json')}"
        if raw is None:
            out.append(CheckResult(name=name, status="error", detail=clip(f"{Path(path).name}: {problem}")))
            continue
        table = (raw.get("meta") or {}).get("table") or name[3:]
        db, _, bare = table.rpartition(".") if "." in table else (databases[0], ".", table)
        out.append(runner.validate_table(db, bare, raw["expectations"], f"gx:{raw.get('name') or name[3:]}"))
    return out
