"""The WAL a data-directory backup needs, put into the vault's archive without waiting for the archiver.

A backup is restorable once every segment from its start to its stop segment is in the vault's WAL
archive. The server's archiver gets there in its own time: one `archive_command` per segment, in
order, so after a burst of writes it may be many segments behind, and the backup would wait for the
whole backlog. The backup runs on the database host, so it can read the segments it needs from
`pg_wal` itself (what `pg_basebackup -X fetch` does) and push them into the archive as
`wal-push` would; the archiver's own push of the same file later finds it there, identical, and
succeeds ("already archived").

Only segments PostgreSQL has finished are pushed: those with `archive_status/<name>.ready` (the
server marks a segment ready once it will never write it again; on a primary `pg_backup_stop` has
just switched past the stop segment). A segment can be recycled only after the archiver pushed it,
so a copy we read while it is being recycled meets the archived one and is refused, never stored.
This is done only when the server is shown to archive into this very vault (its
`pg_stat_archiver.last_archived_wal` is in it): otherwise, and for segments not ready, the backup
waits for the archiver as before. A standby's stop segment is not finished when its backup stops
(the primary finishes it), so standby backups always wait.
"""

from __future__ import annotations

import os
from typing import Any

from seawall.errors import ConflictError, IntegrityError, SeawallError
from seawall.memory import huge_buffer
from seawall.postgres import walnames
from seawall.postgres.conn import PgConn
from seawall.postgres.physical import read_archiver
from seawall.postgres.wal import WalArchive
from seawall.vault import Vault


def segments(start: str, stop: str, seg_size: int) -> list[str]:
    """Segment names from `start` to `stop` inclusive (one timeline)."""
    names, name = [start], start
    while name < stop:
        name = walnames.next_segment(name, seg_size)
        names.append(name)
    return names


def archives_here(vault: Vault, conn: PgConn, sysid: str, pg: Any = None) -> bool:
    """Whether the server's archiver writes into this vault (its last archived file is in it);
    `pg`: an open connection to it (`physical.read_archiver`)."""
    state = read_archiver(conn, pg)
    if not state.last_archived_wal or state.failing:
        return False
    return vault.store.exists(WalArchive(vault).key(state.last_archived_wal, sysid))


def push_needed(vault: Vault, datadir: str, sysid: str, start: str, stop: str, seg_size: int) -> list[str]:
    """Push the finished segments of start..stop the archive lacks; returns those still missing."""
    archive = WalArchive(vault)
    missing = []
    for name in segments(start, stop, seg_size):
        if vault.store.exists(archive.key(name, sysid)):
            continue
        wal = os.path.join(datadir, "pg_wal")
        if not os.path.exists(os.path.join(wal, "archive_status", f"{name}.ready")):
            missing.append(name)  # not finished yet, or already archived and gone: the archiver's
            continue
        try:
            archive.push_bytes(name, read_segment(os.path.join(wal, name)), sysid=sysid)
        except (OSError, ConflictError, IntegrityError, SeawallError):
            missing.append(name)  # recycled meanwhile, or anything odd: leave it to the archiver
    return missing


def read_segment(path: str) -> memoryview:
    """The file's bytes (its size when opened), in `seawall.memory.huge_buffer`.

    A fresh 16 MiB `bytes` costs 4,096 page faults: ~9-11 ms per segment on these VMs, most of a
    backup's push; with huge pages it is 8, ~3 ms. The memory is a copy, like `read()`'s: a file
    changed afterwards does not change it.
    """
    with open(path, "rb", buffering=0) as fh:
        size = os.fstat(fh.fileno()).st_size
        view, got = huge_buffer(size), 0
        while got < size:
            n = fh.readinto(view[got:size])
            if not n:
                break  # the file shrank under us: what is there, as read() would give it
            got += n
    return view[:got]
