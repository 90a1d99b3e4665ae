"""The continuous WAL archive: PostgreSQL's `archive_command` / `restore_command` storage.

Objects live under `wal/<system-identifier>/<file name>`, one per segment, `.history`,
`.partial` or `.backup` file, sealed with `ObjType.WAL` and their key as associated data (so an
object copied under another name fails to open). A vault is bound to one cluster: the sealed
record `wal/cluster` holds its system identifier, created on the first push; WAL from any other
cluster is refused.

Pushing is idempotent (Barman's `MatchingDuplicateWalFile`): an identical file already archived is
success, a different one under the same name is a `ConflictError` (PostgreSQL then keeps the file
and retries), except a `.partial` (two branches promoted from the same segment: the first is kept).
This module sits on the per-segment hot path: no Prefect, typer, rich or pydantic.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from seawall.crypto import ObjType, sealed_size_max
from seawall.errors import ConfigError, ConflictError, IntegrityError, ObjectNotFound
from seawall.postgres import walnames
from seawall.vault import Vault

CLUSTER_KEY = "wal/cluster"
XLP_LONG_HEADER = 0x0002
LONG_HEADER_LEN = 40  # XLogLongPageHeaderData: 24-byte short header + sysid, seg size, block size
_NATIVE = sys.byteorder  # PostgreSQL writes its headers in the machine's byte order


@dataclass(frozen=True)
class ClusterBinding:
    """What `wal/cluster` records about the one cluster a vault archives."""

    system_identifier: str
    wal_segment_size: int | None = None
    created: str = ""


@dataclass(frozen=True)
class SegmentHeader:
    """The facts seawall reads from a segment's first (long) page header."""

    system_identifier: str
    seg_size: int
    page_addr: int


def read_segment_header(data: bytes | memoryview, name: str) -> SegmentHeader:
    """Parse XLogLongPageHeaderData at the start of a WAL segment.

    Layout (access/xlog_internal.h): xlp_magic u16, xlp_info u16, xlp_tli u32, xlp_pageaddr u64,
    xlp_rem_len u32, padding → 24 bytes; then xlp_sysid u64, xlp_seg_size u32, xlp_xlog_blcksz u32.
    """
    if len(data) < LONG_HEADER_LEN:
        raise IntegrityError(f"{name} is too short to be a WAL segment ({len(data)} bytes)")
    info = int.from_bytes(data[2:4], _NATIVE)
    seg_size = int.from_bytes(data[32:36], _NATIVE)
    if not info & XLP_LONG_HEADER or seg_size < (1 << 20) or seg_size & (seg_size - 1):
        raise IntegrityError(f"{name} does not start with a WAL long page header")
    return SegmentHeader(
        system_identifier=str(int.from_bytes(data[24:32], _NATIVE)),
        seg_size=seg_size,
        page_addr=int.from_bytes(data[8:16], _NATIVE),
    )


def read_control_sysid(datadir: str | os.PathLike = ".") -> str | None:
    """System identifier from `global/pg_control` (its first field, a uint64), if readable."""
    try:
        with open(Path(datadir) / "global" / "pg_control", "rb") as fh:
            head = fh.read(8)
    except OSError:
        return None
    return str(int.from_bytes(head, _NATIVE)) if len(head) == 8 else None


def _validate_name(name: str) -> None:
    if not walnames.is_wal_file_name(name):
        raise ConfigError(f"{name!r} is not a WAL file name", hint="expected e.g. 000000010000000000000003")


def _check_segment(header: SegmentHeader, name: str) -> None:
    """The segment's first page must sit where its name says (catches misnamed files)."""
    _, segno = walnames.parse_segment(name, header.seg_size)
    if header.page_addr != segno * header.seg_size:
        raise IntegrityError(
            f"{name} holds WAL from {walnames.format_lsn(header.page_addr)}, not the segment its name says"
        )


class WalArchive:
    """The WAL archive inside one vault.

    Example:
        >>> archive = WalArchive(open_vault("file:///srv/vault", passphrase))
        >>> archive.push("pg_wal/000000010000000000000003")
        'archived'
    """

    def __init__(self, vault: Vault):
        self.vault = vault
        self._binding: ClusterBinding | None = None

    def __repr__(self) -> str:
        return f"WalArchive({self.vault.url!r})"

    # ---- the cluster binding ----------------------------------------------------------------
    def binding(self) -> ClusterBinding | None:
        """The cluster this vault archives, or None before the first push."""
        if self._binding is None:
            try:
                payload = self.vault.get_record(CLUSTER_KEY)
            except ObjectNotFound:
                return None
            try:
                self._binding = ClusterBinding(**json.loads(payload))
            except (ValueError, TypeError) as exc:
                raise IntegrityError(f"{CLUSTER_KEY} in {self.vault.url} is unreadable: {exc}") from None
        return self._binding

    def bind(self, sysid: str, seg_size: int | None = None) -> ClusterBinding:
        """Bind the vault to cluster `sysid` (first push), or check it is the bound one."""
        bound = self.binding()
        if bound is None:
            record = ClusterBinding(sysid, seg_size, datetime.now(UTC).isoformat())
            blob = self.vault.keyring.seal(ObjType.RECORD, CLUSTER_KEY, json.dumps(asdict(record)).encode())
            if self.vault.store.put_if_absent(CLUSTER_KEY, blob):
                self._binding = record
            bound = self.binding()  # a concurrent first push may have won: re-read
            if bound is None:
                raise IntegrityError(f"{CLUSTER_KEY} in {self.vault.url} vanished while binding the vault")
        if bound.system_identifier != sysid:
            raise ConflictError(
                f"vault {self.vault.url} archives WAL of cluster {bound.system_identifier}, "
                f"refusing WAL of cluster {sysid}",
                hint="point this cluster at its own vault",
            )
        return bound

    @property
    def seg_size(self) -> int:
        bound = self.binding()
        return (bound.wal_segment_size if bound else None) or walnames.DEFAULT_SEG_SIZE

    def key(self, name: str, sysid: str | None = None) -> str:
        """Object key of WAL file `name` (of the bound cluster unless `sysid` is given)."""
        _validate_name(name)
        if sysid is None:
            bound = self.binding()
            if bound is None:
                raise ObjectNotFound(f"{name} is not archived: {self.vault.url} holds no WAL yet")
            sysid = bound.system_identifier
        return f"wal/{sysid}/{name}"

    # ---- push / get -------------------------------------------------------------------------
    def push(self, path: str | os.PathLike, *, sysid: str | None = None) -> str:
        """Archive the WAL file at `path`; returns "archived" or "already archived".

        Raises:
            ConflictError: another cluster's WAL, or different content under an existing name.
            IntegrityError: a segment without a valid long page header where its name says.
        """
        path = Path(path)
        _validate_name(path.name)  # before reading 16 MiB
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read WAL file {path}: {exc.strerror}") from None
        return self.push_bytes(path.name, data, sysid=sysid)

    def push_bytes(self, name: str, data: bytes | memoryview, *, sysid: str | None = None) -> str:
        """`push` for a file already read (the async pusher reads and stats one descriptor)."""
        _validate_name(name)
        file_sysid, seg_size = self._identify(name, data, sysid)
        self.bind(file_sysid, seg_size)
        return self.put(name, data, file_sysid)

    def _identify(self, name: str, data: bytes | memoryview, sysid: str | None) -> tuple[str, int | None]:
        """(system identifier, segment size) of a file about to be pushed."""
        if walnames.is_segment(name.removesuffix(".partial")):
            header = read_segment_header(data, name)
            _check_segment(header, name)
            if sysid is not None and sysid != header.system_identifier:
                raise ConflictError(f"{name} belongs to cluster {header.system_identifier}, not --sysid {sysid}")
            return header.system_identifier, header.seg_size
        found = sysid or read_control_sysid()
        if found is None:
            bound = self.binding()
            if bound is None:
                raise ConfigError(f"cannot tell which cluster {name} belongs to",
                                  hint="run from the data directory or pass --sysid")
            found = bound.system_identifier
        return found, None

    def put(self, name: str, data: bytes | memoryview, sysid: str) -> str:
        """Store `data` as `name` unless present; an identical copy counts as success."""
        key = self.key(name, sysid)
        keyring, store = self.vault.keyring, self.vault.store
        # Sealed straight into the store's reusable (local: page-aligned, written with O_DIRECT)
        # buffer where it has one: no fresh 16 MiB of ciphertext and no page-cache copy per segment.
        out = store.write_buffer(sealed_size_max(len(data)))
        if out is not None:
            sealed = out[:keyring.seal_into(ObjType.WAL, key, data, out)]
        else:
            sealed = keyring.seal(ObjType.WAL, key, data)
        if store.put_if_absent(key, sealed):
            return "archived"
        existing = keyring.open(ObjType.WAL, key, store.get(key))
        if keyring.chunk_id(existing) == keyring.chunk_id(data):
            return "already archived"
        if name.endswith(".partial"):
            # Two copies promoted from the same segment (two branches of one backup) both push the old
            # timeline's last segment as .partial. Recovery never reads a .partial, and refusing it
            # would stall that server's archiver on it forever (it retries the oldest file first).
            return "kept the archived copy (a .partial of another branch; recovery never reads it)"
        raise ConflictError(
            f"{name} is already archived in {self.vault.url} with different content",
            hint="PostgreSQL keeps the file; find out why two different files share one name",
        )

    def read(self, name: str) -> bytes:
        """The plaintext of an archived file; ObjectNotFound if it is not archived."""
        key = self.key(name)
        try:
            blob = self.vault.store.get(key)
        except ObjectNotFound:
            raise ObjectNotFound(f"{name} is not in the WAL archive") from None
        return self.vault.keyring.open(ObjType.WAL, key, blob)

    def get(self, name: str, dest: str | os.PathLike) -> None:
        """Restore `name` to `dest` atomically (temp file in the same directory, then rename).

        No fsync: after a crash, recovery simply asks for the file again.
        """
        data = self.read(name)
        dest = Path(dest)
        tmp = dest.with_name(f".{dest.name}.seawall-{secrets.token_hex(4)}")
        try:
            with open(tmp, "xb") as fh:
                fh.write(data)
            os.replace(tmp, dest)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ConfigError(f"cannot write {dest}: {exc.strerror}") from None

    # ---- listing ----------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Every archived file name of the bound cluster, sorted."""
        bound = self.binding()
        if bound is None:
            return []
        prefix = f"wal/{bound.system_identifier}/"
        return sorted(i.key[len(prefix):] for i in self.vault.store.list(prefix) if "/" not in i.key[len(prefix):])

    def histories(self, names: list[str] | None = None) -> dict[int, str]:
        """timeline → text of its archived `.history` file."""
        names = self.names() if names is None else names
        return {walnames.history_timeline(n): self.read(n).decode(errors="replace")
                for n in names if walnames.is_history(n)}


def check_continuity(archive: WalArchive, from_segment: str | None = None, timeline: int | None = None,
                     current_lsn: int | str | None = None, seg_size: int | None = None) -> walnames.Continuity:
    """`walnames.find_gaps` over what `archive` holds (lists once, reads the history files)."""
    names = archive.names()
    return walnames.find_gaps(names, archive.histories(names), from_segment=from_segment, timeline=timeline,
                              current_lsn=current_lsn, seg_size=seg_size or archive.seg_size)


def _server_position(dsn: str) -> dict[str, Any]:
    """System identifier, segment size, timeline and current WAL position of a server."""
    from seawall.postgres.conn import PgConn, translate_psycopg_errors

    conn = PgConn(dsn)
    with conn.connect() as pg, translate_psycopg_errors(f"reading the WAL position of {conn.display()}"):
        recovery, sysid, seg_size = pg.execute(
            "SELECT pg_is_in_recovery(), system_identifier::text,"
            " (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size')"
            " FROM pg_control_system()").fetchone()
        if recovery:
            lsn, timeline = pg.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()[0], None
        else:
            lsn, walfile = pg.execute("SELECT pg_current_wal_lsn()::text,"
                                      " pg_walfile_name(pg_current_wal_lsn())").fetchone()
            timeline = int(walfile[:8], 16)
    return {"system_identifier": sysid, "seg_size": int(seg_size), "lsn": lsn, "timeline": timeline}


def wal_check_report(vault_url: str, passphrase: str, from_segment: str | None = None,
                     dsn: str | None = None) -> dict[str, Any]:
    """The WAL continuity report as a JSON-able dict, for `seawall wal-check`.

    Args:
        vault_url: the vault holding the WAL archive.
        passphrase: its passphrase.
        from_segment: the oldest segment needed (a base backup's start segment); default: the
            oldest archived segment.
        dsn: the archiving server; its current position turns segments after the newest archived
            one into `not_yet_archived`, and its timeline is the one followed.

    Returns:
        `status` is "ok", "lost", "not_yet_archived" or "empty"; `ok` is False only when WAL
        (or a timeline history file) is lost; `first_missing` names the first gap; `message` is a
        one-line summary. See `walnames.find_gaps` for the rules.
    """
    from seawall.vault import open_vault

    archive = WalArchive(open_vault(vault_url, passphrase))
    bound = archive.binding()
    server = _server_position(dsn) if dsn else None
    if server and bound and server["system_identifier"] != bound.system_identifier:
        raise ConflictError(f"server is cluster {server['system_identifier']}, but {archive.vault.url} "
                            f"archives cluster {bound.system_identifier}")
    seg_size = server["seg_size"] if server else archive.seg_size
    report = check_continuity(archive, from_segment, server and server["timeline"],
                              server and server["lsn"], seg_size)
    current = server["lsn"] if server else None
    return {
        "vault": archive.vault.url,
        "system_identifier": bound.system_identifier if bound else None,
        "timeline": report.timeline,
        "wal_segment_size": seg_size,
        "from_segment": report.start,
        "newest_archived": report.newest,
        "current_lsn": current,
        "current_segment": (walnames.segment_for_lsn(current, server["timeline"], seg_size)
                            if current and server["timeline"] else None),
        "status": report.status,
        "ok": report.ok,
        "first_missing": report.first_missing,
        "lost": report.lost,
        "not_yet_archived": report.not_yet_archived,
        "missing_history": report.missing_history,
        "segments_checked": report.checked,
        "message": _summary(report),
    }


def _summary(report: walnames.Continuity) -> str:
    if report.missing_history:
        return f"timeline history {report.missing_history[0]} is missing from the archive"
    if report.lost:
        more = f" (and {len(report.lost) - 1} more)" if len(report.lost) > 1 else ""
        return f"WAL segment {report.lost[0]} is lost{more}: recovery cannot pass it"
    if report.not_yet_archived:
        return (f"{len(report.not_yet_archived)} segment(s) not yet archived, "
                f"first {report.not_yet_archived[0]}")
    if report.newest is None:
        return "no WAL archived from the start segment on"
    return f"WAL continuous from {report.start} to {report.newest}"
