"""Scratch targets for restore verification: created before the restore, always removed after.

- logical backups: by default a throwaway cluster (initdb + start on a free port, or the port
  asked for) in a private temporary directory; or a given server (`scratch` connection), where the
  flow creates a new database and drops it afterwards (an existing database is refused, so nothing
  of the user's is ever dropped);
- physical backups: a new data directory in a private temporary directory, started by the restore
  on a free port (a remote server cannot host a restored data directory);
- file trees: a private temporary folder.

`teardown` never raises and leaves no process, port or folder behind (server stopped `immediate`,
then killed if it lingers; directories removed; a created database dropped `WITH (FORCE)`).
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from seawall.checks import sources
from seawall.errors import ConfigError
from seawall.postgres.cluster import LocalCluster, free_port, make_private_dir, port_in_use
from seawall.postgres.conn import PgConn, translate_psycopg_errors

LOGICAL, PHYSICAL, FILES = "postgres-logical", "postgres-physical", "files"


@dataclass
class Scratch:
    """Where one verification restores to, and everything teardown must remove."""

    kind: str  # cluster | server | datadir | folder
    root: Path | None = None
    port: int | None = None
    conn: PgConn | None = None  # logical: the database to restore into
    created_db: str | None = None
    cluster: LocalCluster | None = None
    notes: list[str] = field(default_factory=list)
    created_roles: list[str] = field(default_factory=list)  # logical restores onto a given server
    source: dict = field(default_factory=dict)  # MariaDB/Redis: see seawall.checks.sources

    def describe(self) -> str:
        if self.kind == "source":
            server = self.source.get("server")
            return f"throwaway server {server}" if server else f"throwaway server in {self.source.get('root')}"
        if self.kind == "server" and self.conn is not None:
            return f"database {self.created_db} on {self.conn.display()}"
        if self.kind == "folder":
            return f"temporary folder {self.root}"
        return f"throwaway cluster on port {self.port} in {self.root}"

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def tree(self) -> Path:
        return self.root / "tree"


def _require_free(port: int | None) -> int:
    if port is not None and port_in_use(port):
        raise ConfigError(f"scratch port {port} is already in use", hint="pick a free port, or leave it unset")
    return port or free_port()


def _throwaway_cluster(dbname: str, port: int | None, workdir: str | None) -> Scratch:
    cluster = LocalCluster.create(workdir, port=_require_free(port), settings={"fsync": "off"})
    scratch = Scratch("cluster", cluster.datadir.parent, cluster.port, PgConn(cluster.conninfo(dbname)),
                      cluster=cluster)
    try:
        cluster.start()
    except BaseException:
        teardown(scratch)
        raise
    return scratch


def _database_exists(server: PgConn, dbname: str) -> bool:
    with server.with_dbname("postgres").connect() as pg, translate_psycopg_errors(f"checking {server.display()}"):
        return pg.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is not None


def _on_server(server: PgConn) -> Scratch:
    dbname = server.params().get("dbname")
    if not dbname or dbname in ("postgres", "template0", "template1"):
        dbname = f"seawall_verify_{secrets.token_hex(4)}"
    if _database_exists(server, dbname):
        raise ConfigError(f"scratch database {dbname} already exists on {server.display()}",
                          hint="name a database that does not exist: the verification creates it and drops it")
    return Scratch("server", conn=server.with_dbname(dbname), created_db=dbname)


def provision(kind: str, source: dict, *, server: PgConn | None = None, port: int | None = None,
              workdir: str | None = None) -> Scratch:
    """Create the scratch target for a backup of `kind` (see the module docstring).

    Raises:
        ConfigError: the port is in use, the scratch database exists, or a server was given for a
            physical backup.
    """
    if kind in sources.KINDS:
        if server is not None:
            sources.refuse_scratch_server(kind)
        return Scratch("source", source=sources.provision(kind, _require_free(port) if port else None, workdir))
    if kind == FILES:
        return Scratch("folder", Path(tempfile.mkdtemp(prefix="seawall-verify-", dir=workdir)))
    if kind == PHYSICAL:
        if server is not None:
            raise ConfigError("a physical backup restores into a throwaway cluster on this host",
                              hint="leave the scratch server unset (it applies to logical backups)")
        free = _require_free(port)
        return Scratch("datadir", make_private_dir("seawall-verify-", workdir), free)
    if kind != LOGICAL:
        raise ConfigError(f"cannot verify a {kind} backup")
    if server is not None:
        return _on_server(server)
    return _throwaway_cluster(source.get("dbname") or "restored", port, workdir)


def _drop_database(conn: PgConn, dbname: str) -> None:
    from psycopg import sql

    with conn.with_dbname("postgres").connect() as pg:
        pg.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


def _drop_roles(scratch: Scratch) -> list[str]:
    """Roles the restore created on a given server go with the scratch database (if nothing else uses them)."""
    from psycopg import sql

    problems = []
    for name in reversed(scratch.created_roles):
        try:
            with scratch.conn.with_dbname("postgres").connect() as pg:
                pg.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
        except Exception as exc:
            problems.append(f"could not drop role {name} created for the verification: {exc}")
    return problems


def teardown(scratch: Scratch) -> list[str]:
    """Remove everything the scratch target holds; returns problems (it never raises)."""
    problems = sources.teardown(scratch.source) if scratch.kind == "source" else []
    if scratch.kind == "server" and scratch.conn is not None and scratch.created_db:
        try:
            _drop_database(scratch.conn, scratch.created_db)
        except Exception as exc:
            problems.append(f"could not drop scratch database {scratch.created_db}: {exc}")
        problems += _drop_roles(scratch)
    if scratch.kind == "datadir" and scratch.root is not None:
        cluster = LocalCluster(scratch.datadir, scratch.port, socket_dir=str(scratch.root / "data.sock"))
        with contextlib.suppress(Exception):
            cluster.remove()  # stops (immediate, then SIGKILL) and removes scratch.root
    if scratch.cluster is not None:
        with contextlib.suppress(Exception):
            scratch.cluster.remove()
    if scratch.root is not None:
        shutil.rmtree(scratch.root, ignore_errors=True)
        if scratch.root.exists():
            problems.append(f"could not remove {scratch.root}")
    return problems
