"""Restoring a logical backup with `pg_restore -j`, streaming table files from the vault.

No full local copy: toc.dat is written as a regular file and every table file `NNNN.dat` becomes a
named pipe (FIFO). pg_restore reads directory-format data files strictly sequentially with one
`fopen` each, so a FIFO serves it: a poller opens each pipe for writing with
`O_WRONLY | O_NONBLOCK` (which succeeds only once pg_restore has opened it for reading) and a worker
thread then streams that table from the vault into it. Where FIFOs cannot be made, every file is
written out first (`use_fifos=False` forces this).

Afterwards the rows and checksum of every table are recomputed on the target
(`seawall.postgres.tablestats.table_stats`) and compared with the manifest's; a difference raises
IntegrityError naming the first differing table.
"""

from __future__ import annotations

import errno
import fcntl
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from seawall.errors import ConfigError, IntegrityError
from seawall.manifest import BackupStatus, Manifest, StreamRef
from seawall.postgres import binaries, roles
from seawall.postgres.conn import PgConn, translate_psycopg_errors
from seawall.postgres.logical import KIND, TOC, tool_error
from seawall.postgres.roles import RoleOptions
from seawall.postgres.tablestats import table_stats
from seawall.streams import ChunkReader
from seawall.tablecheck import TableCheck
from seawall.vault import Vault

Progress = Callable[[int], None]
_SAFE_NAME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


# ---- target database ----------------------------------------------------------------------------

_USER_RELATIONS = """
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
"""


def _target_dbname(target: PgConn) -> str:
    dbname = target.params().get("dbname")
    if not dbname:
        raise ConfigError(f"restore target {target.display()} names no database", hint="add dbname=... to it")
    return dbname


def _database_exists(target: PgConn, dbname: str) -> bool:
    with target.with_dbname("postgres").connect() as pg, translate_psycopg_errors(f"checking {dbname}"):
        return pg.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is not None


def _create_database(target: PgConn, dbname: str, source: dict) -> None:
    from psycopg import sql

    stmt = sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(dbname))
    if source.get("encoding"):
        stmt += sql.SQL(" ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
            sql.Literal(source["encoding"]), sql.Literal(source["lc_collate"]), sql.Literal(source["lc_ctype"]))
    with target.with_dbname("postgres").connect() as pg, translate_psycopg_errors(f"creating database {dbname}"):
        pg.execute(stmt)


def prepare_target(target: PgConn, source: dict, *, create_db: bool, clean: bool) -> bool:
    """Create the target database if asked and missing; refuse a non-empty one unless `clean`.

    Returns whether the database was created (a failed restore then drops it again).
    """
    dbname = _target_dbname(target)
    if create_db and not _database_exists(target, dbname):
        _create_database(target, dbname, source)
        return True
    with target.connect() as pg, translate_psycopg_errors(f"inspecting {target.display()}"):
        relations = pg.execute(_USER_RELATIONS).fetchone()[0]
    if relations and not clean:
        raise ConfigError(f"database {dbname} is not empty ({relations} relations)",
                          hint="restore into a new database, or pass clean=True to replace its objects")
    return False


def _drop_database(target: PgConn, dbname: str) -> None:
    from psycopg import sql

    with target.with_dbname("postgres").connect() as pg, translate_psycopg_errors(f"dropping {dbname}"):
        pg.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))


def _read_globals(vault: Vault, manifest: Manifest) -> dict | None:
    if not any(s.name == roles.STREAM for s in manifest.streams):
        return None  # a backup from before roles were saved
    with ChunkReader(vault) as reader:
        return roles.decode(b"".join(reader.iter_stream(manifest.stream(roles.STREAM))))


def _plan_roles(target: PgConn, globals_: dict | None, options: RoleOptions) -> list[dict]:
    if globals_ is None:
        return []
    admin = target.with_dbname("postgres")
    with admin.connect() as pg, translate_psycopg_errors(f"reading roles of {target.display()}"):
        return roles.plan(pg, globals_, options, target.display())


def _roles_step(target: PgConn, step, *args) -> None:
    admin = target.with_dbname("postgres")
    with admin.connect() as pg, translate_psycopg_errors(f"changing roles in {target.display()}"):
        step(pg, *args)


# ---- feeding pg_restore -------------------------------------------------------------------------


class FifoFeeder:
    """Serves each FIFO of the dump directory from the vault once pg_restore opens it."""

    def __init__(self, vault: Vault, dumpdir: Path, streams: list[StreamRef], jobs: int,
                 progress: Progress | None):
        self.dumpdir, self.progress = dumpdir, progress
        self.waiting = {s.name: s for s in streams}
        self.reader = ChunkReader(vault)
        self.pool = ThreadPoolExecutor(jobs + 1, thread_name_prefix="seawall-fifo")
        self.futures: list[Future[None]] = []
        self.served = 0
        for name in self.waiting:
            os.mkfifo(dumpdir / name, 0o600)

    def poll(self) -> None:
        """Start serving every pipe pg_restore has opened since the last call."""
        for name in list(self.waiting):
            try:
                fd = os.open(self.dumpdir / name, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no reader yet
                    continue
                raise
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
            self.futures.append(self.pool.submit(self._serve, fd, self.waiting.pop(name)))

    def _serve(self, fd: int, ref: StreamRef) -> None:
        with open(fd, "wb", buffering=0) as out:
            try:
                for data in self.reader.iter_stream(ref):
                    out.write(data)
                    if self.progress:
                        self.progress(len(data))
            except BrokenPipeError:  # pg_restore stopped reading: its own error tells why
                return
        self.served += 1

    def close(self) -> None:
        """Wait for the workers and raise the first vault error (a corrupt chunk, say)."""
        self.pool.shutdown(wait=True)
        self.reader.__exit__(None, None, None)
        for fut in self.futures:
            fut.result()


def _materialise(vault: Vault, dumpdir: Path, streams: list[StreamRef], progress: Progress | None) -> None:
    with ChunkReader(vault) as reader:
        for ref in streams:
            with open(dumpdir / ref.name, "wb") as out:
                for data in reader.iter_stream(ref):
                    out.write(data)
                    if progress:
                        progress(len(data))


def _restore_argv(dumpdir: Path, target: PgConn, jobs: int, clean: bool, no_owner: bool) -> list[str]:
    argv = [binaries.tool("pg_restore"), "-Fd", "-j", str(jobs), "--exit-on-error", "-d", target.conninfo]
    argv += ["--clean", "--if-exists"] if clean else []
    argv += ["--no-owner", "--no-acl"] if no_owner else []
    return [*argv, str(dumpdir)]


def _run_restore(argv: list[str], target: PgConn, feeder: FifoFeeder | None, errlog: Path) -> None:
    with open(errlog, "w+") as err:
        proc = binaries.popen(argv, as_server_user=False, env=target.tool_env(), stdout=subprocess.DEVNULL,
                              stderr=err)
        try:
            while proc.poll() is None:
                if feeder:
                    feeder.poll()
                time.sleep(0.02)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if feeder:
                feeder.close()
        err.seek(0)
        if proc.returncode != 0:
            raise tool_error("pg_restore", err.read(), f"restoring into {target.display()}")


def _check_names(manifest: Manifest) -> list[StreamRef]:
    for ref in manifest.streams:
        if not ref.name or ref.name.startswith(".") or not set(ref.name) <= _SAFE_NAME:
            raise IntegrityError(f"backup {manifest.backup_id} has a stream with an unsafe name {ref.name!r}")
    return [s for s in manifest.streams if s.name not in (TOC, roles.STREAM)]


def restore_logical(vault: Vault, manifest: Manifest, target: PgConn | str, *, create_db: bool = True,
                    clean: bool = False, jobs: int = 2, no_owner: bool = False, use_fifos: bool = True,
                    progress: Progress | None = None, spool_dir: str | None = None,
                    verify: bool = True, role_options: RoleOptions | None = None) -> list[TableCheck]:
    """Restore a logical backup into `target`'s database and verify every table against the manifest.

    Args:
        vault: the opened vault holding the backup.
        manifest: a DONE `postgres-logical` manifest.
        target: the database to restore into (its dbname is created when missing and `create_db`).
        create_db: create the database if it does not exist.
        clean: allow a non-empty database; pg_restore drops the backup's objects first.
        jobs: pg_restore parallel jobs (`-j`).
        no_owner: skip ownership and privileges (implied by `role_options.mode == "skip"`).
        use_fifos: stream table files through named pipes (no local copy of the data).
        progress: called with byte counts as data is read from the vault.
        spool_dir: parent directory for the temporary dump directory.
        verify: compare every table with the manifest afterwards (restore verification turns this
            off because its own checks do the same, table by table).
        role_options: create, skip or map the roles the backup needs (`seawall.postgres.roles`);
            default: create the missing ones, refuse a collision.

    Returns:
        One TableCheck per table, all ok (empty when `verify` is False). A mismatch raises
        IntegrityError (with `.checks`).

    Example:
        >>> restore_logical(vault, manifest, PgConn("host=scratch dbname=shop_check"))  # doctest: +SKIP
    """
    target = target if isinstance(target, PgConn) else PgConn(target)
    if manifest.kind != KIND or manifest.status != BackupStatus.DONE:
        raise ConfigError(f"backup {manifest.backup_id} is a {manifest.status} {manifest.kind} backup, "
                          f"not a complete {KIND} one")
    data_streams = _check_names(manifest)
    options = role_options or RoleOptions()
    globals_ = _read_globals(vault, manifest)
    to_create = _plan_roles(target, globals_, options)  # a collision is refused before any change
    created_db = prepare_target(target, manifest.source, create_db=create_db, clean=clean)
    try:
        if globals_ is not None:
            _roles_step(target, roles.create, to_create, globals_, options)
        # A backup from before roles were saved cannot bring its roles: verification (use_existing)
        # then restores without owners and grants, as it always did for such backups.
        skip_owners = no_owner or options.mode == "skip" or (globals_ is None and options.use_existing)
        _run_pg_restore(vault, manifest, target, data_streams, jobs, clean, skip_owners, use_fifos, progress,
                        spool_dir)
        _roles_step(target, roles.rename_mapped, options)
        checks = verify_tables(target, manifest) if verify else []
    except BaseException:
        _undo(target, created_db, options)
        raise
    return checks


def _undo(target: PgConn, created_db: bool, options: RoleOptions) -> None:
    """Leave nothing half-restored that looks usable: the created database and roles go again."""
    if created_db:
        _drop_database(target, _target_dbname(target))
    if options.created:
        _roles_step(target, roles.drop_created, options)


def _run_pg_restore(vault: Vault, manifest: Manifest, target: PgConn, data_streams: list[StreamRef], jobs: int,
                    clean: bool, no_owner: bool, use_fifos: bool, progress: Progress | None,
                    spool_dir: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="seawall-restore-", dir=spool_dir) as tmp:
        dumpdir = Path(tmp) / "dump"
        dumpdir.mkdir()
        with ChunkReader(vault) as reader, open(dumpdir / TOC, "wb") as out:
            for data in reader.iter_stream(manifest.stream(TOC)):
                out.write(data)
        feeder = FifoFeeder(vault, dumpdir, data_streams, jobs, progress) if use_fifos and hasattr(os, "mkfifo") \
            else None
        if feeder is None:
            _materialise(vault, dumpdir, data_streams, progress)
        argv = _restore_argv(dumpdir, target, jobs, clean, no_owner)
        _run_restore(argv, target, feeder, Path(tmp) / "pg_restore.err")


def verify_tables(target: PgConn, manifest: Manifest) -> list[TableCheck]:
    """Compare each table's rows and checksum on `target` with the manifest; raise on the first difference."""
    recorded: dict[str, dict] = manifest.source.get("tables", {})
    found = table_stats(target, list(recorded))
    checks = [TableCheck(t, r["rows"], found.get(t, {}).get("rows"), r["checksum"], found.get(t, {}).get("checksum"))
              for t, r in recorded.items()]
    bad = next((c for c in checks if not c.ok), None)
    if bad is not None:
        what = "rows" if bad.rows_actual != bad.rows_expected else "checksum"
        exc = IntegrityError(f"restored table {bad.table} differs from backup {manifest.backup_id}: {what} "
                             f"{bad.rows_actual if what == 'rows' else bad.checksum_actual} != recorded "
                             f"{bad.rows_expected if what == 'rows' else bad.checksum_expected}")
        exc.checks = checks  # type: ignore[attr-defined]
        raise exc
    return checks
