"""What of a PostgreSQL data directory a physical backup copies, and what it leaves out.

The rules are PostgreSQL's own for base backups (src/backend/backup/basebackup.c, "Making a Base
Backup Using the Low Level API" in the docs), which pg_basebackup and pgBackRest follow:

- directories kept empty: `pg_wal` (WAL comes from the archive; `archive_status` is kept, empty),
  `pg_dynshmem`, `pg_notify`, `pg_replslot`, `pg_serial`, `pg_snapshots`, `pg_stat_tmp`,
  `pg_subtrans` (all rebuilt or meaningless after a restore);
- files left out anywhere: `postmaster.pid`, `postmaster.opts`, `pg_internal.init*` (relcache init
  files and the temporary copies a backend renames into place), `backup_label`/`tablespace_map`
  of an old exclusive backup (the backup stores the ones `pg_backup_stop` returns),
  `backup_manifest`, `postgresql.auto.conf.tmp`, `current_logfiles.tmp`, and anything named
  `pgsql_tmp*` (temporary files and their directories);
- in database directories: temporary relations (`t<backend>_<relfilenode>`) and the forks of
  unlogged relations except their `_init` fork (PostgreSQL recreates them from it at startup);
- `pg_tblspc/<oid>` links are not followed here: each tablespace is walked as a root of its own
  (only its `PG_<major>_<catversion>` directory, the one that belongs to this server).

`walk` yields what to keep in walk order (parents first, siblings by name) with its `lstat`.
`global/pg_control` is yielded last: it is copied after every other file, as pg_basebackup does.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass

DATA_TREE = "pgdata"  # the data directory's tree index in a backup's manifest


def tree_name(oid: int | None) -> str:
    """The manifest stream of a root's tree index: the data directory's, or tablespace `oid`'s. Here,
    not in `datadir_backup`: a restore needs the name, and importing the backup side cost ~30 ms of
    a delta restore (pgsession, datadir_read and their dataclasses)."""
    return DATA_TREE if oid is None else f"tablespace-{oid}"

EMPTY_DIRS = frozenset({"pg_wal", "pg_dynshmem", "pg_notify", "pg_replslot", "pg_serial", "pg_snapshots",
                        "pg_stat_tmp", "pg_subtrans"})
SKIP_FILES = frozenset({"postmaster.pid", "postmaster.opts", "backup_label", "tablespace_map",
                        "backup_manifest", "backup_manifest.tmp", "postgresql.auto.conf.tmp",
                        "current_logfiles.tmp"})
SKIP_PREFIXES = ("pgsql_tmp", "pg_internal.init")  # temporary files; relcache init files (and their temp copies)
PG_CONTROL = "global/pg_control"
# A relation file: <relfilenode>[_fork][.segment]; temporary relations are t<backend>_<relfilenode>...
_REL = re.compile(r"^(\d+)(?:_(fsm|vm|init))?(?:\.(\d+))?$")
_TEMP_REL = re.compile(r"^t\d+_\d+")


@dataclass(slots=True)
class Item:
    """One object to back up: `path` relative to its root ('/'-separated, '.' for the root)."""

    path: str
    full: str
    st: os.stat_result


def relation_fork(name: str) -> tuple[int, str, int] | None:
    """(relfilenode, fork, segment) of a relation file name; fork is 'main', 'fsm', 'vm' or 'init'."""
    m = _REL.match(name)
    if not m:
        return None
    return int(m[1]), m[2] or "main", int(m[3] or 0)


def is_db_dir(rel: str) -> bool:
    """A directory of relation files: `base/<oid>`, `global`, or `PG_.../<oid>` in a tablespace."""
    parts = rel.split("/")
    return rel == "global" or (len(parts) == 2 and parts[1].isdigit() and (parts[0] == "base"
                                                                          or parts[0].startswith("PG_")))


def walk(root: str, *, tablespace_dir: str | None = None) -> Iterator[Item]:
    """What to back up under `root`, in walk order (pg_control last).

    Args:
        root: the data directory, or a tablespace location.
        tablespace_dir: for a tablespace, the one version directory to walk (`PG_15_202209061`).
    """
    yield Item(".", root, os.lstat(root))
    control: Item | None = None
    for item in _walk_dir(root, "", tablespace_dir):
        if item.path == PG_CONTROL and tablespace_dir is None:
            control = item
            continue
        yield item
    if control is not None:
        yield control


def _names(path: str) -> list[str]:
    with os.scandir(path) as it:
        return sorted(e.name for e in it)


def _walk_dir(full_dir: str, rel: str, tablespace_dir: str | None) -> Iterator[Item]:
    try:
        names = _names(full_dir)
    except FileNotFoundError:  # a database dropped while we walk
        return
    if rel == "" and tablespace_dir is not None:
        names = [n for n in names if n == tablespace_dir]
    db_dir = is_db_dir(rel)
    unlogged = _unlogged(names) if db_dir else set()
    for name in names:
        if name in SKIP_FILES or name.startswith(SKIP_PREFIXES):
            continue
        path = f"{rel}/{name}" if rel else name
        if db_dir and _skipped_relation(name, unlogged):
            continue
        full = os.path.join(full_dir, name)
        try:
            st = os.lstat(full)
        except FileNotFoundError:  # dropped relation, removed temp file
            continue
        if rel == "pg_tblspc" and tablespace_dir is None and stat.S_ISLNK(st.st_mode):
            continue  # tablespaces are roots of their own; restore recreates the links from tablespace_map
        if path == "pg_wal" and tablespace_dir is None and stat.S_ISLNK(st.st_mode):
            st = os.stat(full)  # WAL elsewhere (initdb -X): a restore makes a plain folder, never a link to it
        yield Item(path, full, st)
        if stat.S_ISDIR(st.st_mode):
            if rel == "" and tablespace_dir is None and name in EMPTY_DIRS:
                if name == "pg_wal":
                    yield from _archive_status(full)
                continue
            yield from _walk_dir(full, path, tablespace_dir)


def _archive_status(pg_wal: str) -> Iterator[Item]:
    full = os.path.join(pg_wal, "archive_status")
    try:
        yield Item("pg_wal/archive_status", full, os.lstat(full))
    except FileNotFoundError:
        return


def _unlogged(names: list[str]) -> set[int]:
    """Relfilenodes with an init fork: unlogged relations."""
    out = set()
    for name in names:
        fork = relation_fork(name)
        if fork is not None and fork[1] == "init":
            out.add(fork[0])
    return out


def _skipped_relation(name: str, unlogged: set[int]) -> bool:
    if _TEMP_REL.match(name):
        return True
    fork = relation_fork(name)
    return fork is not None and fork[0] in unlogged and fork[1] != "init"


def block_level(path: str) -> bool:
    """Whether a file's pages carry LSNs that say when they last changed (main and vm forks).

    The free space map is not WAL-logged (its pages may change with an old LSN), nor is an init fork
    worth the bother; files outside database directories are not relations.
    """
    head, _, name = path.rpartition("/")
    fork = relation_fork(name)
    return fork is not None and fork[1] in ("main", "vm") and is_db_dir(head)


def read_system_identifier(datadir: str) -> int:
    """The system identifier in `global/pg_control` (its first 8 bytes, little-endian)."""
    with open(os.path.join(datadir, PG_CONTROL), "rb") as fh:
        return int.from_bytes(fh.read(8), "little")
