"""Logical PostgreSQL backups: pg_dump's directory format streamed into the vault table by table.

How a backup runs:

1. One connection opens a REPEATABLE READ READ ONLY transaction and exports its snapshot
   (`pg_export_snapshot()`); it reads the schema facts (columns, indexes) inside that snapshot and
   stays open until pg_dump is done, so the snapshot stays valid.
2. `pg_dump -Fd -Z0 -j N --snapshot=ID` writes into a local spool directory
   (`seawall.postgres.spool`). An inotify watch
   (IN_CREATE / IN_CLOSE_WRITE, through ctypes) starts following each file as soon as pg_dump creates
   it: a thread chunks the file while it grows, releases the part already read (fallocate
   PUNCH_HOLE) and deletes the file once pg_dump closed it and it is fully read. When more than
   `max_spool_bytes` wait unread (a vault slower than pg_dump), pg_dump is paused (SIGSTOP) until
   the spool drains. While a file is read, its rows and checksum are computed from the COPY text
   (see `seawall.postgres.tablestats`): they come from the dump's own snapshot by construction and
   cost no second table scan.
3. `pg_restore -l` maps TOC entries to files (`TABLE DATA` of table oid N → `NNNN.dat`; the oid is
   resolved to its quoted key in the snapshot's catalog), and toc.dat is streamed last.

Compression is ours (zstd in the vault), hence `-Z0`: uncompressed COPY text also deduplicates
across backups, so unchanged tables cost no new bytes. Without inotify (non-Linux) the files are
streamed after pg_dump exits, and the spool then holds the whole dump.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seawall.errors import ConfigError, IntegrityError, PermanentError, RetryableError
from seawall.lifecycle import recording
from seawall.manifest import BackupStatus, Manifest, new_manifest
from seawall.postgres import binaries, roles
from seawall.postgres.conn import PgConn, translate_psycopg_errors
from seawall.postgres.idents import QUALIFIED_SQL
from seawall.postgres.spool import TOC, Inotify, Spool
from seawall.postgres.spool import TailReader as TailReader  # re-exported: it lived here
from seawall.postgres.tablestats import pgoptions, schema_facts, server_facts
from seawall.streams import ChunkWriter
from seawall.vault import Vault

KIND = "postgres-logical"
Progress = Callable[[int], None]
# `pg_restore -l` prints names raw (a space inside a name looks like a separator), so a TABLE DATA
# entry is identified by its dump id and the table's oid (pg_dump gives TABLE DATA the table's oid),
# and the oid is looked up in the snapshot's own catalog.
_DATA_ENTRY = re.compile(r"^(\d+); \d+ (\d+) TABLE DATA ")
_TABLE_KEYS_SQL = f"""
SELECT c.oid, {QUALIFIED_SQL} FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm', 'f')
"""
_RETRYABLE_DUMP = ("could not connect", "connection to server", "server closed the connection",
                   "terminating connection", "could not receive data")


def open_snapshot(conn: PgConn):
    """A connection holding a REPEATABLE READ READ ONLY transaction, and its exported snapshot id."""
    pg = conn.connect()
    try:
        with translate_psycopg_errors(f"exporting a snapshot on {conn.display()}"):
            pg.execute("SET idle_in_transaction_session_timeout = 0")  # pg_dump may run for hours
            pg.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            snapshot = pg.execute("SELECT pg_export_snapshot()").fetchone()[0]
    except BaseException:
        pg.close()
        raise
    return pg, snapshot


# ---- pg_dump / pg_restore -l --------------------------------------------------------------------


def dump_env(conn: PgConn) -> dict[str, str]:
    env = conn.tool_env()
    env["PGOPTIONS"] = pgoptions(env.get("PGOPTIONS", ""))
    return env


def tool_error(tool: str, stderr: str, what: str) -> Exception:
    """One line from a failed PostgreSQL tool: its last `error:` line; connection trouble is retryable."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error:" in ln] or lines  # not a trailing "detail:" line
    last = errors[-1] if errors else "no error output"
    message = f"{tool} failed {what}: {last}"
    text = stderr.lower()
    if "password authentication failed" in text or "no password supplied" in text:
        from seawall.errors import AuthError

        return AuthError(message, hint="check the user, password, .pgpass and pg_hba.conf")
    if any(marker in text for marker in _RETRYABLE_DUMP):
        return RetryableError(message)
    return PermanentError(message)


def table_keys(pg) -> dict[int, str]:
    """`{oid: table key}` of every table-like relation (`seawall.postgres.idents`)."""
    return dict(pg.execute(_TABLE_KEYS_SQL).fetchall())


def toc_data_files(dumpdir: Path, keys: dict[int, str], env: dict[str, str] | None = None) -> dict[str, str]:
    """`{"NNNN.dat": table key}` for every TABLE DATA entry of the dump's toc.dat.

    `keys` maps table oids to keys (`table_keys`, read in the dump's snapshot).
    """
    result = binaries.run([binaries.tool("pg_restore"), "-l", str(dumpdir)], as_server_user=False,
                          check=False, env=env)
    if result.returncode != 0:
        raise tool_error("pg_restore -l", result.stderr, f"reading {dumpdir / TOC}")
    out = {}
    for line in result.stdout.splitlines():
        match = _DATA_ENTRY.match(line)
        if match:
            oid = int(match.group(2))
            if oid not in keys:
                raise IntegrityError(f"pg_dump's table of contents names table oid {oid}, "
                                     "which the dump's snapshot does not have")
            out[f"{match.group(1)}.dat"] = keys[oid]
    return out


def _run_dump(conn: PgConn, dumpdir: Path, snapshot: str, jobs: int, encoding: str, spool: Spool,
              errlog: Path) -> None:
    argv = [binaries.tool("pg_dump"), "-Fd", "-Z0", "-j", str(jobs), f"--snapshot={snapshot}", "--no-sync",
            f"--encoding={encoding}", "-f", str(dumpdir), "-d", conn.conninfo]
    watch = Inotify.maybe(dumpdir)
    with open(errlog, "w+") as err:
        proc = binaries.popen(argv, as_server_user=False, env=dump_env(conn), stdout=subprocess.DEVNULL,
                              stderr=err, start_new_session=True)  # its own group: paused as a whole
        try:
            follow_files(proc, watch, spool)
        finally:
            _signal(proc, signal.SIGCONT)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if watch:
                watch.close()
            spool.finish()
        err.seek(0)
        if proc.returncode != 0:
            raise tool_error("pg_dump", err.read(), f"dumping {conn.display()}")


def _signal(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def follow_files(proc: subprocess.Popen, watch: Inotify | None, spool: Spool) -> None:
    """Hand files to the spool as pg_dump creates and closes them, until it exits.

    When more than `spool.limit` bytes wait unread (the vault is slower than pg_dump), pg_dump and
    its workers are paused (SIGSTOP) until half of that is read: the spool stays bounded. Unread
    bytes always drain, so the pause cannot deadlock.
    """
    if watch is None:  # no inotify: everything is streamed by spool.finish() after pg_dump exits
        proc.wait()
        return
    paused = False
    while True:
        done = proc.poll() is not None
        events = watch.read(0 if done else 0.05)
        for created, name in events:
            if created:
                spool.follow(name)
            else:
                spool.closed(name)
        unread = spool.measure()
        if (not paused and unread > spool.limit) or (paused and unread <= spool.limit // 2):
            paused = not paused
            _signal(proc, signal.SIGSTOP if paused else signal.SIGCONT)
        spool.check()
        if done and not events:
            return


def _table_facts(files: dict[str, str], spool: Spool, columns: dict[str, list]) -> dict[str, dict]:
    tables = {}
    for fname, table in sorted(files.items(), key=lambda kv: kv[1]):
        rows, checksum = spool.digests[fname]
        tables[table] = {"rows": rows, "checksum": checksum, "file": fname, "columns": columns.get(table, [])}
    return tables


def backup_logical(vault: Vault, conn: PgConn | str, dataset: str, *, jobs: int = 2, backup_id: str | None = None,
                   parent: Manifest | None = None, progress: Progress | None = None,
                   spool_dir: str | None = None, max_spool_bytes: int = 256 << 20, workers: int = 3,
                   passwords: bool = False) -> Manifest:
    """Back up one database with pg_dump as a new `postgres-logical` backup; returns the DONE manifest.

    Args:
        vault: the opened vault to write into.
        conn: the database to dump.
        dataset: the dataset name the backup is filed under.
        jobs: pg_dump parallel jobs (`-j`).
        backup_id: use this id instead of a new one (retries of a task).
        parent: the previous backup of the dataset (recorded; deduplication needs nothing else).
        progress: called with byte counts as data is stored.
        spool_dir: parent directory of the local spool (default: the system temp dir).
        max_spool_bytes: pause pg_dump while more than this waits unread in the spool.
        workers: chunk upload threads.
        passwords: also save the password verifiers of the roles the database needs (superuser
            only; stored encrypted in the backup's `globals.json` stream, see `seawall.postgres.roles`).

    Example:
        >>> backup_logical(vault, PgConn("host=db dbname=shop user=backup"), "shop")  # doctest: +SKIP
    """
    conn = conn if isinstance(conn, PgConn) else PgConn(conn)
    if jobs < 1:
        raise ConfigError(f"jobs must be at least 1, not {jobs}")
    binaries.tool("pg_dump")
    pg, snapshot = open_snapshot(conn)  # bad credentials / missing database fail here, before any write
    try:
        with translate_psycopg_errors(f"reading facts of {conn.display()}"):
            facts = server_facts(pg)
            columns, indexes = schema_facts(pg)
            keys = table_keys(pg)
            globals_ = roles.read_globals(pg, passwords=passwords)
        manifest = new_manifest(dataset, KIND, source={**facts, "snapshot": snapshot, "dump_jobs": jobs,
                                                       "indexes": indexes,
                                                       "roles": [r["name"] for r in globals_["roles"]]})
        if backup_id:
            manifest.backup_id = backup_id
        manifest.parent = parent.backup_id if parent else None
        with recording(vault, manifest) as phase:
            _dump_into(vault, conn, manifest, phase, (columns, keys, globals_), progress,
                       (spool_dir, max_spool_bytes), workers)
    finally:
        pg.close()
    return manifest


def _dump_into(vault: Vault, conn: PgConn, manifest: Manifest, phase: Any, catalog: tuple[dict, dict, dict],
               progress: Progress | None, spool_opts: tuple[str | None, int], workers: int) -> None:
    source = manifest.source
    manifest.transition(BackupStatus.UPLOADING)
    vault.known_chunks(refresh=True)
    with tempfile.TemporaryDirectory(prefix="seawall-dump-", dir=spool_opts[0]) as tmp, \
            ChunkWriter(vault, workers=workers) as writer:
        dumpdir = Path(tmp) / "dump"
        dumpdir.mkdir()
        spool = Spool(dumpdir, writer, progress, spool_opts[1])
        phase("running pg_dump")
        _run_dump(conn, dumpdir, source["snapshot"], source["dump_jobs"], source["encoding"], spool,
                  Path(tmp) / "pg_dump.err")
        phase("reading the dump's table of contents")
        columns, keys, globals_ = catalog
        files = toc_data_files(dumpdir, keys)
        spool.take_toc()
        spool.streams[roles.STREAM] = writer.write(io.BytesIO(roles.encode(globals_)), roles.STREAM)
        source["tables"] = _table_facts(files, spool, columns)
        source["spool"] = {"peak_files": spool.peak_files, "peak_bytes": spool.peak_bytes,
                           "peak_unread": spool.peak_unread, "streamed_early": spool.streamed_early,
                           "files": len(spool.streams)}
        phase("storing chunks")
        writer.fill_stats(manifest.stats)
    manifest.streams = sorted(spool.streams.values(), key=lambda s: s.name)
    stats = manifest.stats
    stats.files = len(manifest.streams)
    stats.bytes_total = stats.bytes_read = sum(s.size for s in manifest.streams)
    stats.chunks_total = sum(len(s.chunks) for s in manifest.streams)
