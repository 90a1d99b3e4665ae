"""Great Expectations (1.x) suites run against a restored database.

Two kinds of suites:

- **built-in**, generated per table. What it holds depends on what the other checks already prove:
  - logical backups: the row count equals the manifest's, and the columns exist in their recorded
    order. Nothing more, because the `rows-checksum` check compares every row byte for byte with
    the backup (so the data has exactly the source's nulls and keys), and the rest would be a second
    full pass over the data for no new evidence:
    - NOT NULL: the `schema` check confirms each column's recorded not-null flag, and PostgreSQL
      enforced it on every row as COPY loaded it;
    - uniqueness: `pg_restore --exit-on-error` built every unique index and primary key after
      loading the data (a build fails on a duplicate), the `schema` check confirms each index and
      its definition, and `amcheck` (heapallindexed) confirms every row is in it; on PostgreSQL 16+
      amcheck also re-checks uniqueness (`checkunique`).
  - physical backups record no table facts and have no row-level comparison, so the suite (from
    the restored catalog) also checks that NOT NULL columns hold no nulls and that the columns of
    every plain unique B-tree index (the primary key among them) are unique.
- **user suites**: GX suite JSON files (`{"name", "expectations": [{"type", "kwargs"}], "meta"}`)
  in a folder. Each applies to one table: `meta.table` if set, else the file name
  (`orders.json` → `public.orders`, `public.orders.json`, or `app.public.orders.json` with a
  database). A suite naming a missing table or column is a failed check, not a crash; a file that is
  not a valid suite is an `error` result.

GX runs in an ephemeral context with in-memory stores, no progress bars and no analytics; the
connection uses SQLAlchemy's `postgresql+psycopg` dialect (GX's URL check needs a host even for a
Unix socket: `@localhost:PORT/db?host=/socket/dir`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from seawall.checks import CheckResult, clip, result
from seawall.errors import ConfigError
from seawall.postgres.conn import PgConn
from seawall.postgres.idents import quote_ident, split_identifiers, split_qualified

BUILTIN = "gx:builtin"
_LOCK = threading.Lock()  # GX keeps process-wide registries: one validation at a time
_PLAIN = re.compile(r"[a-z_][a-z0-9_$]*")
_IDENT = re.compile(r'^"?([A-Za-z_][A-Za-z0-9_$]*)"?$')
_UNIQUE_INDEX = re.compile(r"^CREATE UNIQUE INDEX \S+ ON \S+ USING btree \((?P<cols>[^()]*)\)$")


# ---- suites -------------------------------------------------------------------------------------
def unique_keys(indexes: list[list]) -> list[list[str]]:
    """Column lists of plain unique B-tree indexes (no expressions, no predicate), from definitions."""
    keys = []
    for _, definition in indexes:
        m = _UNIQUE_INDEX.match(definition)
        if not m:
            continue
        cols = [_IDENT.match(c.strip()) for c in m["cols"].split(",")]
        if all(cols):
            keys.append([c[1] for c in cols])
    return keys


def builtin_expectations(columns: list[list], indexes: list[list], rows: int | None,
                         *, data_scans: bool = True) -> list[dict[str, Any]]:
    """The built-in suite of one table as GX expectation configurations.

    Args:
        columns: `[name, type, not_null]` in table order.
        indexes: `[name, definition]` (plain unique B-tree ones become uniqueness expectations).
        rows: the expected row count (None: no row-count expectation).
        data_scans: add the null and uniqueness scans; False when another check compares every
            row with the backup (logical backups: see the module docstring for where that evidence
            comes from).
    """
    exps: list[dict[str, Any]] = []
    if rows is not None:
        exps.append({"type": "expect_table_row_count_to_equal", "kwargs": {"value": rows}})
    exps.append({"type": "expect_table_columns_to_match_ordered_list",
                 "kwargs": {"column_list": [c[0] for c in columns]}})
    if not data_scans:
        return exps
    exps += [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": c[0]}} for c in columns if c[2]]
    for key in unique_keys(indexes):
        if len(key) == 1:
            exps.append({"type": "expect_column_values_to_be_unique", "kwargs": {"column": key[0]}})
        else:
            exps.append({"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": key}})
    return exps


def suite_table(path: Path, raw: dict[str, Any]) -> tuple[str | None, str]:
    """(database or None, `schema.table`) a user suite applies to."""
    meta = raw.get("meta") or {}
    name = meta.get("table") or path.name.removesuffix(".json")
    try:
        parts = split_identifiers(name)  # PostgreSQL quoting: "a.b".c is one schema and a table
    except ValueError:
        parts = name.split(".")
    if len(parts) == 1:
        return meta.get("database"), f"public.{_key(parts[0])}"
    if len(parts) == 2:
        return meta.get("database"), f"{_key(parts[0])}.{_key(parts[1])}"
    return parts[0], f"{_key(parts[1])}.{_key(parts[2])}"


def _key(part: str) -> str:
    """One part of a table key as PostgreSQL's quote_ident writes it (plain lower-case names bare)."""
    return part if _PLAIN.fullmatch(part) else quote_ident(part)


def load_user_suites(folder: str | os.PathLike) -> list[tuple[Path, dict[str, Any] | None, str]]:
    """`(file, parsed JSON or None, problem)` for every `*.json` in `folder`, sorted by name."""
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"suites folder {root} does not exist", hint="pass a folder of GX suite JSON files")
    out = []
    for path in sorted(root.glob("*.json")):
        try:
            raw = json.loads(path.read_text())
            if not isinstance(raw, dict) or not isinstance(raw.get("expectations"), list):
                raise ValueError("not a GX suite (needs an 'expectations' list)")
            out.append((path, raw, ""))
        except (OSError, ValueError) as exc:
            out.append((path, None, str(exc)))
    return out


# ---- running ------------------------------------------------------------------------------------
def sqlalchemy_url(conn: PgConn) -> str:
    """`postgresql+psycopg://user:pw@localhost:PORT/db?host=/socket` for a libpq connection.

    A database name that is not URL-safe (a space, unicode) goes into the query as `dbname=`:
    SQLAlchemy 2.0 neither escapes nor decodes the path's database part, and GX's URL check refuses a
    space; query values are escaped and decoded, and psycopg takes `dbname` from them (it wins over
    the path, which holds a URL-safe stand-in because GX drops the query of a URL without a path).
    """
    from urllib.parse import quote

    from sqlalchemy.engine import URL

    p = conn.params()
    host = p.get("host") or "localhost"
    query = {"host": host} if host.startswith("/") else {}
    dbname = p.get("dbname")
    if dbname and quote(dbname, safe="") != dbname:
        # the path keeps a URL-safe stand-in (GX drops the whole query from a URL without one); the
        # query's dbname, decoded by SQLAlchemy, is the one psycopg uses
        query, dbname = {**query, "dbname": dbname}, quote(dbname, safe="").replace("%", "_")
    password = conn.password.get_secret_value() if conn.password is not None else p.get("password")
    url = URL.create("postgresql+psycopg", username=p.get("user"), password=password,
                     host="localhost" if host.startswith("/") else host, port=int(p.get("port") or 5432),
                     database=dbname, query=query)
    return url.render_as_string(hide_password=False)


def _context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    logging.getLogger("great_expectations").setLevel(logging.CRITICAL)  # failures are reported as results
    config = DataContextConfig(progress_bars=ProgressBarsConfig(globally=False), analytics_enabled=False,
                               store_backend_defaults=InMemoryStoreBackendDefaults())
    return gx.get_context(project_config=config, mode="ephemeral")


def _exception_message(info: Any) -> str | None:
    """The first exception message in a GX result's `exception_info` (flat or keyed by metric)."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return info.get("exception_message") or "raised an exception"
    return next((m for v in info.values() if (m := _exception_message(v))), None)


def _describe(r: Any) -> str:
    cfg = r.expectation_config
    col = cfg.kwargs.get("column") or cfg.kwargs.get("column_list")
    what = f"{cfg.type}({col})" if col else cfg.type
    problem = _exception_message(r.exception_info)
    if problem:
        return f"{what}: {problem}"
    res = r.result or {}
    if res.get("unexpected_count") is not None:
        sample = res.get("partial_unexpected_list") or []
        return f"{what}: {res['unexpected_count']} unexpected value(s), e.g. {', '.join(map(repr, sample[:3]))}"
    return f"{what}: observed {res.get('observed_value')!r}"


class GxRunner:
    """Validates suites against the tables of one database (one ephemeral GX context).

    Example:
        >>> runner = GxRunner(PgConn("host=/tmp/s port=5440 user=postgres dbname=shop"))  # doctest: +SKIP
        >>> runner.validate("public.orders", [{"type": "expect_table_row_count_to_equal",
        ...                                    "kwargs": {"value": 1200}}], BUILTIN).status  # doctest: +SKIP
        'pass'
    """

    def __init__(self, conn: PgConn, label_prefix: str = ""):
        self.conn, self.prefix = conn, label_prefix
        self._context = None
        self._source = None
        self._batches: dict[str, Any] = {}

    def _ensure_source(self) -> None:
        """Create the context and data source once (a connection failure raises: the check errors)."""
        if self._source is None:
            self._context = _context()
            self._source = self._context.data_sources.add_postgres(
                name="seawall-scratch", connection_string=sqlalchemy_url(self.conn))

    def _batch_definition(self, table: str):
        """A query asset over the table: GX's table assets lower-case schema names and leave spaces and
        quotes in names unquoted, so the query is written here with PostgreSQL's quoting."""
        if table not in self._batches:
            schema, name = split_qualified(table)
            query = f"SELECT * FROM {quote_ident(schema)}.{quote_ident(name)}"
            asset = self._source.add_query_asset(name=f"t{len(self._batches)}", query=query)
            self._batches[table] = asset.add_batch_definition_whole_table("whole-table")
        return self._batches[table]

    def _exists(self, table: str) -> bool:
        schema, name = split_qualified(table)
        with self.conn.connect() as pg:
            return pg.execute("SELECT to_regclass(%s) IS NOT NULL",
                              (f"{quote_ident(schema)}.{quote_ident(name)}",)).fetchone()[0]

    def validate(self, table: str, expectations: list[dict[str, Any]], check: str) -> CheckResult:
        """Run `expectations` on `table`; a missing table/column or any unmet expectation is `fail`."""
        import great_expectations as gx
        from great_expectations.datasource.fluent.interfaces import TestConnectionError

        start, label = time.monotonic(), self.prefix + table
        with _LOCK:
            try:
                suite = gx.ExpectationSuite(name=check, expectations=expectations)
            except Exception as exc:  # unknown expectation type, bad kwargs: the suite is broken
                return CheckResult(name=check, table=label, status="error", seconds=time.monotonic() - start,
                                   detail=clip(f"invalid suite: {str(exc).splitlines()[0]}"))
            self._ensure_source()
            try:
                if not self._exists(table):
                    raise TestConnectionError(f"{table} does not exist")
                outcome = self._batch_definition(table).get_batch().validate(suite, result_format="SUMMARY")
            except TestConnectionError:
                return result(check, label, False, f"table {table} does not exist in the restored database",
                              time.monotonic() - start)
        failed = [_describe(r) for r in outcome.results if not r.success]
        detail = "; ".join(failed) if failed else f"{len(outcome.results)} expectations met"
        return result(check, label, not failed, detail, time.monotonic() - start)


# ---- the checks ---------------------------------------------------------------------------------
def check_builtin(conn: PgConn, tables: dict[str, dict[str, Any]], indexes: dict[str, list],
                  *, prefix: str = "", data_scans: bool = True) -> list[CheckResult]:
    """The built-in suite on every table: `tables` maps `schema.table` → `{columns, rows?}`.

    `data_scans=False` (logical backups) leaves out the null and uniqueness scans: see
    `builtin_expectations`.

    Example:
        >>> check_builtin(conn, manifest.source["tables"], manifest.source["indexes"],
        ...               data_scans=False)  # doctest: +SKIP
    """
    runner = GxRunner(conn, prefix)
    return [runner.validate(t, builtin_expectations(f.get("columns") or [], indexes.get(t) or [], f.get("rows"),
                                                    data_scans=data_scans), BUILTIN) for t, f in tables.items()]


def check_user_suites(conns: dict[str, PgConn], folder: str | os.PathLike, default_db: str) -> list[CheckResult]:
    """Every user suite in `folder` on its table; `conns` maps database name → connection.

    A suite for a database that was not restored fails like a missing table.
    """
    runners: dict[str, GxRunner] = {}
    out = []
    for path, raw, problem in load_user_suites(folder):
        name = f"gx:{path.name.removesuffix('.json')}"
        if raw is None:
            out.append(CheckResult(name=name, status="error", detail=clip(f"{path.name}: {problem}")))
            continue
        db, table = suite_table(path, raw)
        db = db or default_db
        prefix = f"{db}/" if len(conns) > 1 else ""
        if db not in conns:
            out.append(result(name, prefix + table, False, f"database {db} is not in the restored copy"))
            continue
        runner = runners.setdefault(db, GxRunner(conns[db], prefix))
        out.append(runner.validate(table, raw["expectations"], f"gx:{raw.get('name') or name[3:]}"))
    return out
