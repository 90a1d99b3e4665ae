"""Restore verification of MariaDB/MySQL and Redis backups: scratch servers, restores, checks.

| backup kind | scratch | checks |
|---|---|---|
| mariadb-logical | throwaway `mariadbd` (new datadir) | rows-checksum, check-table, gx:builtin, [gx:user] |
| mariadb-physical | the restored datadir (grants off, socket only) | check-table, gx:builtin, [gx:user] |
| redis-rdb | throwaway `redis-server` loading the snapshot | rdb-load, keys-per-db, sampled-values, [dataset-digest] |

- **rows-checksum**: every table's row count and checksum (`mariadb-dump` data lines, see
  `seawall.mariadb.dumpstream`) against the manifest's, recorded in the backup's own snapshot.
- **check-table**: `CHECK TABLE ... EXTENDED` on every base table (InnoDB page and index checks).
- **gx:builtin**: Great Expectations through SQLAlchemy (`mysql+pymysql`): row count (logical) and
  the columns in their recorded order; on a physical copy, from the restored catalog, plus NOT NULL
  columns holding no nulls.
- **rdb-load**: the server loaded the snapshot (Redis checks the RDB's CRC64 while loading).
- **keys-per-db**: keys per database equal the source's at the snapshot (when the source's keyspace
  did not change during the backup; otherwise within the range it had).
- **sampled-values**: the values of up to 1,000 keys per database sampled at backup time (those that
  did not change during it) read back and compared digest by digest.
- **dataset-digest**: `DEBUG DIGEST` of the copy equals the source's; run only when the backup
  recorded one (the source allowed DEBUG and did not change during the backup).

The scratch server is always removed, also after failures (`teardown`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from seawall.checks import CheckResult, error, result
from seawall.errors import ConfigError

MARIADB_LOGICAL, MARIADB_PHYSICAL, REDIS = "mariadb-logical", "mariadb-physical", "redis-rdb"
KINDS = frozenset({MARIADB_LOGICAL, MARIADB_PHYSICAL, REDIS})
ROWS, CHECK_TABLE, GX_BUILTIN, GX_USER = "rows-checksum", "check-table", "gx:builtin", "gx:user"
RDB_LOAD, KEYS, SAMPLE, DIGEST = "rdb-load", "keys-per-db", "sampled-values", "dataset-digest"


# ---- scratch + restore --------------------------------------------------------------------------
def provision(kind: str, port: int | None, workdir: str | None) -> dict[str, Any]:
    """Create what the restore needs: a started empty server (logical) or a private directory."""
    if kind == MARIADB_LOGICAL:
        from seawall.mariadb.server import LocalServer

        server = LocalServer.create(workdir, port=port)
        try:
            server.start()
        except BaseException:
            server.remove()
            raise
        return {"server": server}
    import tempfile

    from seawall.mariadb.server import chown_to_server_user

    root = Path(tempfile.mkdtemp(prefix="seawall-verify-", dir=workdir))
    chown_to_server_user(root)
    return {"root": root, "port": port}


def restore(vault, manifest, scratch: dict[str, Any], progress) -> Any:
    """Restore into the scratch target; returns how checks reach the copy (MyConn or LocalRedis)."""
    from seawall.mariadb.conn import MyConn

    if manifest.kind == MARIADB_LOGICAL:
        from seawall.mariadb.logical_restore import restore_logical

        server = scratch["server"]
        conn = MyConn(socket=str(server.socket), user="root", database=manifest.source["database"])
        restore_logical(vault, manifest, conn, progress=progress, verify=False)
        return conn
    if manifest.kind == MARIADB_PHYSICAL:
        from seawall.mariadb.physical import restore_physical, scratch_server

        restore_physical(vault, manifest, scratch["root"] / "data", progress=progress)
        server = scratch["server"] = scratch_server(scratch["root"] / "data", scratch["port"])
        server.start(timeout=600)
        return MyConn(socket=str(server.socket), user="root")
    from seawall.redis.rdb import start_from_backup

    server = scratch["server"] = start_from_backup(vault, manifest, port=scratch["port"], progress=progress)
    return server


def teardown(scratch: dict[str, Any]) -> list[str]:
    problems = []
    server = scratch.get("server")
    if server is not None:
        try:
            server.remove()
        except Exception as exc:
            problems.append(f"could not remove scratch server {server}: {exc}")
    root = scratch.get("root")
    if root is not None:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
        if Path(root).exists():
            problems.append(f"could not remove {root}")
    return problems


# ---- checks -------------------------------------------------------------------------------------
def check_names(manifest, suites: str | None) -> list[str]:
    kind = manifest.kind
    if kind == REDIS:
        return [RDB_LOAD, KEYS, SAMPLE] + ([DIGEST] if manifest.source.get("digest") else [])
    names = [ROWS] if kind == MARIADB_LOGICAL else []
    return [*names, CHECK_TABLE, GX_BUILTIN] + ([GX_USER] if suites else [])


def run(name: str, manifest, copy: Any, suites: str | None) -> list[CheckResult]:
    from seawall.checks import mariadb_checks, redis_checks

    table = {ROWS: lambda: mariadb_checks.rows_checksums(copy, manifest),
             CHECK_TABLE: lambda: mariadb_checks.check_tables(copy, _databases(manifest, copy)),
             GX_BUILTIN: lambda: mariadb_checks.gx_builtin(copy, manifest, _databases(manifest, copy)),
             GX_USER: lambda: mariadb_checks.gx_user(copy, suites, _databases(manifest, copy)),
             RDB_LOAD: lambda: redis_checks.loaded(copy, manifest),
             KEYS: lambda: redis_checks.keys_per_db(copy, manifest),
             SAMPLE: lambda: redis_checks.sampled_values(copy, manifest),
             DIGEST: lambda: redis_checks.dataset_digest(copy, manifest)}
    if name not in table:
        return [CheckResult(name=name, status="error", detail=f"unknown check {name!r}")]
    start = time.monotonic()
    try:
        return table[name]()
    except Exception as exc:  # a check never raises
        return [error(name, None, exc, time.monotonic() - start)]


def _databases(manifest, copy) -> list[str]:
    if manifest.kind == MARIADB_LOGICAL:
        return [manifest.source["database"]]
    from seawall.checks.mariadb_checks import user_databases

    return user_databases(copy)


def refuse_scratch_server(kind: str) -> None:
    raise ConfigError(f"a {kind} backup is verified in a throwaway server on this host",
                      hint="leave --scratch-dsn unset (it applies to PostgreSQL logical backups)")


__all__ = ["KINDS", "check_names", "provision", "refuse_scratch_server", "restore", "result", "run", "teardown"]
