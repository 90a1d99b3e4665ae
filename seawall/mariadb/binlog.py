"""Binary log archiving and point-in-time recovery for MariaDB.

**Archiving** (`archive_binlogs`, run on a schedule): `FLUSH BINARY LOGS` closes the active file,
then every closed binlog the vault lacks is fetched over the client protocol
(`mariadb-binlog --read-from-remote-server --raw`) and stored as a chunked stream. Each run that
archived something writes one `mariadb-binlog` manifest in the dataset `<dataset>.binlog`, so the
files are listed, copied to other vaults and verified like any backup. A run is idempotent: files
already archived are skipped.

**Recovery** (`replay_binlogs`): after a base backup is restored (logical or physical), the
archived files from the backup's recorded position are piped through `mariadb-binlog` into the
restored server, up to a time (`--stop-datetime`) or a position (`--stop-position` in a named file).
Binlog event times have one-second resolution: a time target replays exactly the transactions
committed before the whole second it names (a target with a fraction is cut to its second).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from seawall.errors import ConfigError, IntegrityError
from seawall.lifecycle import recording
from seawall.manifest import BackupStatus, Manifest, StreamRef, new_manifest
from seawall.mariadb.conn import MyConn, translate_pymysql_errors
from seawall.mariadb.logical import run_tool, tool_error
from seawall.mariadb.server import tool
from seawall.streams import ChunkReader, ChunkWriter
from seawall.vault import Vault

KIND = "mariadb-binlog"
_NAME = re.compile(r"^(.+)\.(\d{6,})\Z")


def binlog_dataset(dataset: str) -> str:
    """The dataset a source's binlogs are archived under."""
    return f"{dataset}.binlog"


def _require_binlog(my: Any, conn: MyConn) -> None:
    with my.cursor() as cur:
        cur.execute("SELECT @@log_bin")
        if not cur.fetchone()[0]:
            raise ConfigError(f"binary logging is off on {conn.display()}: point-in-time recovery needs it",
                              hint="start the server with log_bin and server_id set, then take a new backup")


def closed_binlogs(conn: MyConn) -> list[tuple[str, int]]:
    """Rotate the active binlog, then list every closed file (name, size), oldest first."""
    with conn.connect() as my, translate_pymysql_errors(f"listing binary logs of {conn.display()}"):
        _require_binlog(my, conn)
        with my.cursor() as cur:
            cur.execute("FLUSH BINARY LOGS")
            cur.execute("SHOW BINARY LOGS")
            rows = [(r[0], int(r[1])) for r in cur.fetchall()]
    return rows[:-1]  # the last one is the new active file


def archived_files(vault: Vault, dataset: str) -> dict[str, tuple[StreamRef, Manifest]]:
    """Every archived binlog of `dataset` (DONE archive manifests), by file name."""
    out: dict[str, tuple[StreamRef, Manifest]] = {}
    for m in vault.list_backups(binlog_dataset(dataset), status=BackupStatus.DONE):
        for ref in m.streams:
            out.setdefault(ref.name, (ref, m))
    return out


def archive_binlogs(vault: Vault, conn: MyConn | str, dataset: str) -> Manifest | None:
    """Archive every closed binlog the vault lacks; returns the new manifest (None: nothing new).

    Example:
        >>> archive_binlogs(vault, "mysql://backup@db1/", "mariadb-shop")  # doctest: +SKIP
    """
    conn = conn if isinstance(conn, MyConn) else MyConn.parse(conn)
    files = closed_binlogs(conn)
    have = archived_files(vault, dataset)
    missing = [(name, size) for name, size in files if name not in have]
    if not missing:
        return None
    manifest = new_manifest(binlog_dataset(dataset), KIND, source={"server": conn.display(),
                                                                     "files": dict(missing)})
    with recording(vault, manifest) as phase, tempfile.TemporaryDirectory(prefix="seawall-binlog-") as tmp:
        manifest.transition(BackupStatus.UPLOADING)
        phase("fetching binlogs")
        argv = [tool("mariadb-binlog"), "--read-from-remote-server", "--raw", f"--result-file={tmp}/",
                *(name for name, _ in missing)]
        run_tool(argv, conn, "fetching binary logs from", lambda out: out.read())
        with ChunkWriter(vault) as writer:
            for name, _ in missing:
                with open(Path(tmp) / name, "rb") as fh:
                    manifest.streams.append(writer.write(fh, name))
            writer.fill_stats(manifest.stats)
        manifest.source["archived_until"] = datetime.now(UTC).isoformat()
        manifest.stats.files = len(manifest.streams)
        manifest.stats.bytes_total = sum(s.size for s in manifest.streams)
    return manifest


# ---- recovery -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class BinlogTarget:
    """Where a replay stops: `latest`, `time:ISO` or `position:FILE:POS`."""

    kind: str = "latest"
    time: datetime | None = None
    file: str | None = None
    position: int | None = None

    @classmethod
    def parse(cls, spec: str | None) -> BinlogTarget:
        spec = (spec or "latest").strip()
        if spec == "latest":
            return cls()
        kind, _, value = spec.partition(":")
        if kind == "time":
            try:
                when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                when = None
            if when is None or when.tzinfo is None:
                raise ConfigError(f"invalid target time {value!r}", hint="use ISO 8601 with a timezone, e.g. "
                                  "2026-11-22T01:00:00Z")
            return cls("time", time=when.astimezone(UTC))
        if kind == "position":
            file, _, pos = value.rpartition(":")
            if not file or not pos.isdigit():
                raise ConfigError(f"invalid binlog position {value!r}",
                                  hint="use FILE:POS, e.g. mariadb-bin.000002:1234")
            return cls("position", file=file, position=int(pos))
        raise ConfigError(f"unknown recovery target {spec!r}", hint="use latest, time:ISO or position:FILE:POS")

    def describe(self) -> str:
        if self.kind == "time":
            return f"time {self.time.isoformat()}"
        return f"position {self.file}:{self.position}" if self.kind == "position" else "latest"


def _sequence(name: str) -> tuple[str, int]:
    match = _NAME.match(name)
    if not match:
        raise IntegrityError(f"archived binlog {name!r} has no sequence number")
    return match[1], int(match[2])


def plan_replay(vault: Vault, manifest: Manifest, target: BinlogTarget) -> list[StreamRef]:
    """The archived files to replay from the backup's position to `target`, checked for gaps."""
    start = manifest.source.get("binlog")
    if not start:
        raise ConfigError(f"backup {manifest.backup_id} was taken with binary logging off: it has no start "
                          "position to roll forward from", hint="enable log_bin on the server and take a new backup")
    archived = archived_files(vault, manifest.dataset)
    base, first = _sequence(start["file"])
    numbered = {_sequence(name)[1]: ref for name, (ref, _) in archived.items() if _sequence(name)[0] == base}
    last = _sequence(target.file)[1] if target.kind == "position" else max(numbered, default=first)
    lost = [n for n in range(first, last + 1) if n not in numbered]
    if lost:
        raise IntegrityError(f"binlog archive of {manifest.dataset} misses {base}.{lost[0]:06d} needed to roll "
                             f"backup {manifest.backup_id} forward", hint="run `seawall binlog-archive` on the "
                             "source; a lost binlog cannot be recovered")
    refs = [numbered[n] for n in range(first, last + 1)]
    if target.kind == "time":
        _check_covered(archived, refs, target, manifest)
    return refs


def _check_covered(archived: dict, refs: list[StreamRef], target: BinlogTarget, manifest: Manifest) -> None:
    newest = max((datetime.fromisoformat(m.source["archived_until"]) for _, m in archived.values()
                  if m.source.get("archived_until")), default=None)
    if newest is None or newest < target.time:
        raise ConfigError(f"target {target.describe()} is after the newest archived binlog of {manifest.dataset} "
                          f"({newest.isoformat() if newest else 'none'})",
                          hint="run `seawall binlog-archive` first, or pick an earlier time")


def binlog_argv(files: list[Path], start: int, target: BinlogTarget, source_db: str | None,
                target_db: str | None) -> list[str]:
    argv = [tool("mariadb-binlog"), f"--start-position={start}"]
    if target.kind == "time":
        argv.append(f"--stop-datetime={target.time:%Y-%m-%d %H:%M:%S}")
    elif target.kind == "position":
        argv.append(f"--stop-position={target.position}")
    if source_db:
        argv.append(f"--database={source_db}")
        if target_db and target_db != source_db:
            argv.append(f"--rewrite-db={source_db}->{target_db}")
    return [*argv, *map(str, files)]


def replay_binlogs(vault: Vault, manifest: Manifest, target_conn: MyConn, target: BinlogTarget, *,
                   source_db: str | None = None) -> dict[str, Any]:
    """Apply archived binlogs to a restored server, from the backup's position to `target`.

    `source_db` limits the replay to one database (logical backups), renamed to the target's.
    """
    refs = plan_replay(vault, manifest, target)
    if not refs:
        return {"binlogs": [], "target": target.describe()}
    with tempfile.TemporaryDirectory(prefix="seawall-replay-") as tmp, ChunkReader(vault) as reader:
        files = []
        for ref in refs:
            path = Path(tmp) / ref.name
            with open(path, "wb") as out:
                for data in reader.iter_stream(ref):
                    out.write(data)
            files.append(path)
        argv = binlog_argv(files, manifest.source["binlog"]["position"], target, source_db,
                           target_conn.database or None)
        _pipe_into(argv, target_conn)
    return {"binlogs": [r.name for r in refs], "target": target.describe()}


def _pipe_into(argv: list[str], target: MyConn) -> None:
    """`mariadb-binlog ... | mariadb` with UTC times; either failing is reported."""
    env = dict(os.environ, TZ="UTC")
    with target.option_file() as opts, tempfile.TemporaryFile() as err1, tempfile.TemporaryFile() as err2:
        dump = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err1, env=env, stdin=subprocess.DEVNULL)
        client = subprocess.Popen([tool("mariadb"), f"--defaults-extra-file={opts}", "--binary-mode",
                                   "--default-character-set=utf8mb4"], stdin=dump.stdout,
                                  stdout=subprocess.DEVNULL, stderr=err2)
        dump.stdout.close()
        client.wait()
        dump.wait()
        for proc, err, name in ((dump, err1, "mariadb-binlog"), (client, err2, "mariadb")):
            if proc.returncode != 0:
                err.seek(0)
                raise tool_error(name, err.read().decode(errors="replace"),
                                 f"replaying binlogs into {target.display()}")
