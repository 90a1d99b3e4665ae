"""Physical backup from the data directory (the default method): what it stores and how.

The backup runs on the database host, reading the files itself (as pgBackRest does): the server's
`data_directory` must be readable here and hold the cluster the connection reaches (the system
identifier in its `global/pg_control` is compared). `pg_backup_start` / `pg_backup_stop` bracket
the reads on one held connection (`seawall.postgres.pgsession`); the files are read on `-j` threads,
page-checked, and reused from the previous backup where unchanged (`seawall.postgres.datadir_read`);
what is excluded is PostgreSQL's list (`seawall.postgres.datadir`).

**Manifest format** (kind `postgres-physical`, `source.method = "datadir"`; what a restore needs):

- streams of kind `tree` (the file-tree index format of `seawall.sources.tree`: one JSON line per
  entry in walk order, `{"path", "type": "f"|"d"|"l", "mode", "mtime_ns", "size", "inode", "uid",
  "gid", "chunks": [[chunk_id, size], ...]}`): `pgdata` for the data directory (paths relative to
  it; `pg_wal/`, `pg_replslot/`... present and empty; no `pg_tblspc/<oid>` links), and
  `tablespace-<oid>` for each tablespace (paths relative to its location, holding its
  `PG_<major>_<catversion>` directory). A file's content is its chunks in order (1 MiB each but
  the last, no whole-file hash: each chunk is checked against its keyed id when read back).
  Every backup lists every file: chunks reused from the previous backup are listed again, so a
  restore reads one manifest, never a chain.
- `source`: `method`, `data_directory`, `backup_label` and `tablespace_map` (the texts
  `pg_backup_stop` returned; a restore writes them into the data directory, and rewrites
  `tablespace_map` when tablespaces are relocated), `tablespaces` (`[{oid, name, location}]`),
  `start_lsn`, `start_wal_file`, `timeline`, `checkpoint_lsn`, `stop_lsn`, `stop_wal_file`,
  `stop_timeline`, `wal_ranges`, `system_identifier`, `wal_segment_size`, `data_checksums`,
  `from_standby`, `stop_time`; then what the incremental rules need: `scan_started_ns`,
  `full_read_at`, `reuse` (which previous backup was used, or why none), and `page_errors` /
  `warnings` (checksum failures: file, relation, block).

**WAL.** Like the `basebackup` method, this one relies on the vault's WAL archive: the backup is
DONE only once every segment from `start_wal_file` to `stop_wal_file` is in *this vault's* archive,
which is what recovery needs to reach consistency (what `pg_basebackup -X fetch` puts into the
backup itself). Rather than wait for the archiver's backlog, the backup pushes the finished
segments it needs itself, from `pg_wal` (`seawall.postgres.backup_wal`; the archiver's own push
later finds them identical). Copying them into the backup as well would store them twice; a
cluster without archiving into the vault is refused before anything starts (`physical.preflight`),
since its backups could not be restored to any point anyway.

**When the previous backup is used** (`choose_parent`): the newest DONE data-directory backup of
the dataset, taken from the same host and data directory, of the same system identifier and
timeline, stopped at or before this backup's start LSN (one WAL history, no going back), and whose
last full read is younger than `full_every_days`. `full=True` reads everything.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from seawall.errors import ConfigError, IntegrityError, ObjectNotFound
from seawall.lifecycle import recording
from seawall.manifest import BackupStatus, Manifest
from seawall.postgres import pgpages, physical
from seawall.postgres.archiver import ArchiverState
from seawall.postgres.backup_wal import archives_here, push_needed
from seawall.postgres.conn import PgConn, translate_psycopg_errors
from seawall.postgres.datadir import DATA_TREE, PG_CONTROL, read_system_identifier, relation_fork, tree_name, walk
from seawall.postgres.datadir_read import BLOCK, PAGES_PER_SEGMENT, FileReader, ReadPlan, entry_for
from seawall.postgres.pgpages import PAGE
from seawall.postgres.pgsession import BackupSession, StopFacts, primary_of, switch_wal, wal_facts
from seawall.postgres.tablespaces import read_tablespaces
from seawall.postgres.walnames import parse_lsn
from seawall.sources.tree import Entry, iter_entries, sort_key
from seawall.streams import ChunkReader, ChunkWriter
from seawall.vault import Vault

METHOD = "datadir"
Progress = Callable[[int], None]


def check_datadir(datadir: str, system_identifier: str, where: str) -> None:
    """ConfigError unless `datadir` is readable here and holds the cluster behind the connection."""
    try:
        local = read_system_identifier(datadir)
    except OSError as exc:
        raise ConfigError(f"the data directory {datadir} of {where} cannot be read here ({exc.strerror})",
                          hint="run the backup on the database host as its OS user (or root), "
                               "or use --method basebackup") from None
    if str(local) != str(system_identifier):
        raise ConfigError(f"{datadir} here holds cluster {local}, but {where} is cluster {system_identifier}",
                          hint="run the backup on the database host, or use --method basebackup") from None


# ---- the previous backup --------------------------------------------------------------------------
def choose_parent(vault: Vault, dataset: str, here: dict[str, Any], *, full: bool,
                  full_every_days: float) -> tuple[Manifest | None, str]:
    """(the backup to reuse unchanged files and blocks from, or None; why) — rules in the docstring."""
    return judge_parent(None if full else _newest_done(vault, dataset), here, full=full,
                        full_every_days=full_every_days)


def judge_parent(parent: Manifest | None, here: dict[str, Any], *, full: bool,
                 full_every_days: float) -> tuple[Manifest | None, str]:
    """`choose_parent` for the newest DONE backup already read (`_newest_done`)."""
    if full:
        return None, "full read asked for"
    if parent is None:
        return None, "no earlier data-directory backup of this dataset"
    src = {**parent.source, "host": parent.host}
    for key in ("system_identifier", "data_directory", "host", "timeline"):
        if str(src.get(key)) != str(here[key]):
            return None, f"the newest backup {parent.backup_id} has another {key} ({src.get(key)})"
    if parse_lsn(src["stop_lsn"]) > here["start_lsn"]:
        return None, f"the cluster is behind the newest backup {parent.backup_id} (restored to an older point?)"
    last_full = datetime.fromisoformat(src.get("full_read_at") or parent.started_at.isoformat())
    if datetime.now(UTC) - last_full > timedelta(days=full_every_days):
        return None, f"the last full read ({last_full:%Y-%m-%d}) is older than {full_every_days:g} days"
    return parent, f"unchanged files and blocks reused from {parent.backup_id}"


def _newest_done(vault: Vault, dataset: str) -> Manifest | None:
    """The newest DONE data-directory backup of `dataset`, reading manifests newest first (backup
    ids start with their start second), so a long history costs a read or two, not one per backup."""
    groups: dict[str, list[str]] = {}
    for key in vault.manifest_keys(dataset):
        groups.setdefault(key.rsplit("/", 1)[1][:16], []).append(key)
    for second in sorted(groups, reverse=True):
        found = []
        for key in groups[second]:  # several in one second: the started_at decides
            try:
                m = vault.read_manifest_key(key)
            except (IntegrityError, ObjectNotFound):  # listed CORRUPT by `seawall list`; not a parent
                continue
            if m.status == BackupStatus.DONE and m.kind == physical.KIND and m.source.get("method") == METHOD:
                found.append(m)
        if found:
            return max(found, key=lambda m: m.started_at)
    return None


ParentRead = tuple[Manifest | None, dict[str, dict[str, Entry]]]  # the likely parent and its entries by tree, path


def _read_parent(vault: Vault, dataset: str, full: bool) -> ParentRead:
    """The vault side of a backup's start: the chunk list refreshed, then the newest backup (the
    likely parent, `judge_parent` decides) and its file entries. The refresh comes first: reading the
    entries loads the chunk index too, and a refresh after that loaded it twice. Before
    pg_backup_start is fine: nothing is read from the data directory until after it."""
    vault.known_chunks(refresh=True)
    newest = None if full else _newest_done(vault, dataset)
    return newest, _parent_entries(vault, newest)


def _parent_entries(vault: Vault, parent: Manifest | None) -> dict[str, dict[str, Entry]]:
    if parent is None:
        return {}
    out: dict[str, dict[str, Entry]] = {}
    with ChunkReader(vault) as reader:
        for stream in parent.streams:
            if stream.kind == "tree":
                out[stream.name] = {e.path: e for e in iter_entries(reader.iter_stream(stream))}
    return out


# ---- the backup ---------------------------------------------------------------------------------
def backup_datadir(vault: Vault, conn: PgConn, dataset: str, *, backup_id: str | None = None,
                   progress: Progress | None = None, archive_wait: float = physical.ARCHIVE_WAIT,
                   jobs: int | None = None, full: bool = False, full_every_days: float = 7,
                   primary_dsn: str | None = None, workers: int = 3, compress_level: int = 1) -> Manifest:
    """Back up the cluster behind `conn` from its data directory; returns the DONE manifest.

    Args:
        vault: the opened vault; the server's archive_command must push into it.
        conn: a superuser (or pg_backup_start + pg_read_all_settings) connection; on a standby, the
            standby (its primary is found from it, or given as `primary_dsn`).
        dataset: dataset name for the manifest.
        backup_id: reuse this id (a retried task); default: a new one.
        progress: called with the number of bytes of each file read or reused.
        archive_wait: seconds to wait for the stop segment to reach the vault.
        jobs: reader threads (default: the CPU count).
        full: read every file and page, reuse nothing from the previous backup.
        full_every_days: read everything when the last full read is older than this.
        primary_dsn: the primary of a standby, when it is not the one it streams from.
        workers: chunk-store threads for remote vaults.
        compress_level: zstd level of the new blocks; 0 stores them uncompressed (faster, ~4x the
            bytes on a typical cluster; bench/POSTGRES.md has the figures).

    Raises:
        ConfigError: archiving not set up, data directory not readable here, standby's primary unreachable.
        RetryableError: the server went away or archiving is stuck.
    """
    # One connection for every question to this server, held from here to the end (the backup's own
    # session: pg_backup_start/stop must be on it anyway). A standby's primary has its own. The vault
    # side of the start (`_read_parent`) runs on a thread meanwhile: the checks below and the
    # server's checkpoint are mostly waits on the server.
    with BackupSession(conn) as session, ThreadPoolExecutor(1, thread_name_prefix="seawall-parent") as pool:
        parent_read = pool.submit(_read_parent, vault, dataset, full)
        facts = physical.read_facts(conn, session.pg)
        if facts.data_checksums:
            pgpages.preload()  # the page checks' library (C, or numpy), while we wait for the server below
        archiver = primary_of(conn, primary_dsn) if facts.in_recovery else conn
        on_archiver = None if facts.in_recovery else session.pg
        physical.preflight(physical.read_facts(archiver) if facts.in_recovery else facts, archiver.display())
        archived = physical.require_archiver_ok(archiver, on_archiver)
        manifest = physical._new_physical_manifest(facts, dataset, backup_id)
        manifest.source.update(method=METHOD, compress_level=compress_level)
        options = {"full": full, "full_every_days": full_every_days, "jobs": jobs or os.cpu_count() or 2,
                   "workers": workers, "progress": progress, "level": compress_level}
        with recording(vault, manifest) as phase:
            _between_start_and_stop(vault, session, manifest, facts, phase, options, parent_read, pool)
            phase("archiving the backup's WAL")
            _archive_backup_wal(vault, archiver, on_archiver, manifest, facts, archive_wait, archived)
            manifest.source["stop_time"] = physical._server_now(conn, session.pg).isoformat()
    return manifest


def _archive_backup_wal(vault: Vault, archiver: PgConn, pg: Any, manifest: Manifest, facts: physical.ServerFacts,
                        archive_wait: float, before: ArchiverState) -> None:
    """Have every segment from the start to the stop segment in the vault (`seawall.postgres.backup_wal`);
    `pg`: the open connection to the archiving server, if we hold one; `before`: its archiver's state
    before the backup started (`archiver.wait_archived`)."""
    src, sysid = manifest.source, facts.system_identifier
    missing = [src["stop_wal_file"]]
    if facts.in_recovery:
        switch_wal(archiver)  # a standby does not switch segments: its primary closes the stop segment
    elif archives_here(vault, archiver, sysid, pg):
        missing = push_needed(vault, src["data_directory"], sysid, src["start_wal_file"], src["stop_wal_file"],
                              facts.wal_segment_size)
    src["wal_pushed_by_backup"] = not missing
    if missing:
        physical.wait_archived(archiver, missing[-1], timeout=archive_wait, poll=0.1, pg=pg, since=before)
        for name in missing:
            physical.require_in_vault(vault, sysid, name, timeout=archive_wait, poll=0.1)


def _between_start_and_stop(vault: Vault, session: BackupSession, manifest: Manifest, facts: physical.ServerFacts,
                            phase: Callable[[str], None], options: dict[str, Any],
                            parent_read: Future[ParentRead], pool: ThreadPoolExecutor) -> None:
    phase("checking the data directory")
    conn = session.conn
    datadir, catversion = session.layout()
    check_datadir(datadir, facts.system_identifier, conn.display())
    tablespaces = read_tablespaces(conn) if facts.extra_tablespaces else []
    manifest.source.update(data_directory=datadir, tablespaces=tablespaces)
    phase("pg_backup_start")
    start_lsn = session.start(f"seawall {manifest.backup_id}")
    newest, previous = parent_read.result()
    manifest.source["scan_started_ns"] = time.time_ns()  # before any file is walked or read
    here = {"system_identifier": facts.system_identifier, "data_directory": datadir, "host": manifest.host,
            "timeline": _timeline(session), "start_lsn": start_lsn}
    parent, why = judge_parent(newest, here, full=options["full"], full_every_days=options["full_every_days"])
    manifest.parent = parent.backup_id if parent else None
    manifest.source["reuse"] = why
    manifest.source["full_read_at"] = (parent.source.get("full_read_at") if parent
                                       else manifest.started_at.isoformat())
    phase("reading files")
    tsdir = f"PG_{facts.server_version_num // 10000}_{catversion}"
    roots = [(tree_name(None), datadir, None)] + [(tree_name(t["oid"]), t["location"], tsdir) for t in tablespaces]
    plan = ReadPlan(start_lsn, facts.data_checksums,
                    parent_start_lsn=parse_lsn(parent.source["start_lsn"]) if parent else 0,
                    parent_scan_ns=int(parent.source.get("scan_started_ns", 0)) if parent else 0,
                    full=options["full"])
    # pg_backup_stop runs on the pool's thread from the moment the last file (pg_control) is read,
    # while this thread writes the file trees and makes the chunks durable: both are mostly waits
    # (the server's WAL switch and fsyncs, ~12-17 ms; the vault's fsyncs). Nothing else uses the
    # session meanwhile, and the pool's exit waits for the stop before the session closes.
    stopping: list[Future[StopFacts]] = []
    _read_roots(vault, manifest, roots, plan, parent, previous if parent else {}, jobs=options["jobs"],
                workers=options["workers"], progress=options["progress"], conn=conn, level=options["level"],
                files_read=lambda: stopping.append(pool.submit(session.stop)))
    phase("pg_backup_stop")
    manifest.source.update(wal_facts(stopping[0].result(), facts.wal_segment_size))


def _timeline(session: BackupSession) -> int:
    with translate_psycopg_errors(f"reading the timeline of {session.conn.display()}"):
        return int(session.pg.execute("SELECT timeline_id FROM pg_control_checkpoint()").fetchone()[0])


def _read_roots(vault: Vault, manifest: Manifest, roots: list[tuple[str, str, str | None]], plan: ReadPlan,
                parent: Manifest | None, previous: dict[str, dict[str, Entry]], *, jobs: int, workers: int,
                progress: Progress | None, conn: PgConn, level: int, files_read: Callable[[], None]) -> None:
    """Walk and read the roots (the chunk list refreshed and `previous`, the parent's entries, read);
    `files_read` is called once every file is read, before the trees are written."""
    manifest.transition(BackupStatus.UPLOADING)
    trees: list[tuple[str, list[Entry]]] = []
    todo, control = [], []
    for name, path, tsdir in roots:
        prev = previous.get(name, {})
        entries = []
        for item in walk(path, tablespace_dir=tsdir):
            entry = entry_for(item)
            entries.append(entry)
            if entry.type == "f":
                (control if name == DATA_TREE and item.path == PG_CONTROL else todo).append(
                    (name, item, entry, prev.get(item.path)))
        trees.append((name, entries))
    with ChunkWriter(vault, workers=workers, seal_in_caller=bool(vault.store.batch_bytes), level=level) as writer:
        with FileReader(writer, plan, jobs=jobs, progress=progress) as reader:
            reader.read_all(todo)
            reader.read_all(control)  # pg_control last, after every other file (pg_basebackup does so too)
        files_read()  # the reader's threads are done (its `with` waited for them)
        refs = []
        for name, entries in trees:
            kept = sorted((e for e in entries if e.type != "gone"), key=lambda e: sort_key(e.path))
            refs.append(writer.write(io.BytesIO(b"".join(e.to_line() for e in kept)), name, kind="tree"))
        writer.fill_stats(manifest.stats)
    manifest.streams = refs
    _record_counts(manifest, trees, reader, conn, parent)
    _record_changes(manifest, trees, previous)


def _record_counts(manifest: Manifest, trees: list[tuple[str, list[Entry]]], reader: FileReader,
                   conn: PgConn, parent: Manifest | None) -> None:
    c, stats = reader.counters, manifest.stats
    files = [e for _, entries in trees for e in entries if e.type == "f"]
    stats.files = len(files)
    stats.bytes_total = sum(e.size for e in files)
    stats.bytes_read = c.bytes_read
    stats.files_unchanged = c.files_unchanged
    stats.chunks_total += sum(len(e.chunks) for e in files)
    manifest.source.update(files_read=c.files_read, bytes_reused_in_read_files=c.bytes_reused,
                           blocks_reused=c.blocks_reused, blocks_patched=c.blocks_patched,
                           pages_patched=c.pages_patched, pages_checked=c.pages_checked)
    for record in c.bad_pages:
        record["relation"] = relation_name(conn, record["root"], record["file"], manifest)
    bad = c.bad_pages + carried_errors(parent, trees)
    if bad:
        manifest.source["page_errors"] = bad
        manifest.source["warnings"] = [page_warning(r) for r in bad]


def _record_changes(manifest: Manifest, trees: list[tuple[str, list[Entry]]],
                    previous: dict[str, dict[str, Entry]]) -> None:
    """Files new, changed and deleted since the previous backup (the anomaly detector reads them)."""
    changes = manifest.stats.change_stats()
    for name, entries in trees:
        prev = previous.get(name, {})
        files = {e.path: e for e in entries if e.type == "f"}
        changes.files_new += sum(1 for p in files if p not in prev)
        changes.files_changed += sum(1 for p, e in files.items() if p in prev and e.chunks != prev[p].chunks)
        changes.files_deleted += sum(1 for p, e in prev.items() if e.type == "f" and p not in files)


def carried_errors(parent: Manifest | None, trees: list[tuple[str, list[Entry]]]) -> list[dict[str, Any]]:
    """The previous backup's bad pages that this one holds again: the chunk that held the page was
    reused (file unchanged, or its block unchanged), so the same damaged bytes are in this backup.
    (pgBackRest carries page errors of files it did not copy again in the same way.)"""
    if parent is None:
        return []
    chunks = {(name, e.path): e.chunks for name, entries in trees for e in entries if e.type == "f"}
    out = []
    for record in parent.source.get("page_errors") or []:
        index = _segment_offset(record["file"], record["block"]) // BLOCK
        now = chunks.get((record["root"], record["file"])) or []
        if index < len(now) and now[index][0] == record.get("chunk"):
            out.append(record)
    return out


def _segment_offset(path: str, block: int) -> int:
    fork = relation_fork(path.rpartition("/")[2])
    return (block - (fork[2] if fork else 0) * PAGES_PER_SEGMENT) * PAGE


def page_warning(record: dict[str, Any]) -> str:
    where = record["file"] if record["root"] == DATA_TREE else f"{record['root']}/{record['file']}"
    rel = f" (relation {record['relation']})" if record.get("relation") else ""
    return (f"page checksum failure: {where}{rel} block {record['block']}: checksum "
            f"{record['checksum_found']}, expected {record['checksum_expected']}")


def relation_name(conn: PgConn, root: str, path: str, manifest: Manifest) -> str | None:
    """`schema.table` of a relation file, asked of the server (None when it cannot tell)."""
    parts = path.split("/")
    fork = relation_fork(parts[-1])
    if fork is None:
        return None
    if parts[0] == "global":
        dboid, spc = None, 1664
    else:
        dboid = int(parts[-2])
        spc = 0 if root == DATA_TREE else int(root.rpartition("-")[2])
    try:
        with conn.connect() as pg:
            dbname = pg.execute("SELECT datname FROM pg_database WHERE oid = %s", (dboid,)).fetchone() if dboid \
                else ("postgres",)
        if not dbname:
            return None
        with conn.with_dbname(dbname[0]).connect() as pg:
            row = pg.execute("SELECT pg_filenode_relation(%s, %s)::regclass::text", (spc, fork[0])).fetchone()
        return f"{dbname[0]}: {row[0]}" if row and row[0] else None
    except Exception:  # a name is a courtesy: the file and block are what the report needs
        return None
