"""Clusters with tablespaces: base backup of every tablespace, and restore with relocation.

Backup. pg_basebackup writes one tar per tablespace (`<oid>.tar`) besides `base.tar`, and refuses to
write them to stdout ("can only write single tablespace to stdout"). So it writes them into a local
spool directory (`-D DIR -Ft`), and each tar is streamed into the vault while pg_basebackup writes
it, then deleted (`seawall.postgres.spool`: inotify, hole punching, pg_basebackup paused while too
much waits unread). `backup_manifest` stays a file (pg_basebackup renames it into place) and is read
at the end for the WAL range. The backup records each tablespace's oid, name and location.

Restore. `base.tar` holds a `tablespace_map` file (`<oid> <location>` lines, `\\`, CR and LF
escaped with a backslash) and an empty `pg_tblspc`; PostgreSQL creates the `pg_tblspc/<oid>`
links from that file when recovery starts. Each `<oid>.tar` is extracted into its location, the
original one or the one `--tablespace-map OLD=NEW` gives, which must be new or empty (checked
before anything is written), and `tablespace_map` is rewritten with the locations used.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from seawall.errors import ConfigError
from seawall.manifest import Manifest
from seawall.postgres import binaries
from seawall.postgres.basebackup_tar import TarTap
from seawall.postgres.conn import PgConn, translate_psycopg_errors
from seawall.postgres.spool import Inotify, Spool
from seawall.streams import ChunkWriter

_TABLESPACES_SQL = """
SELECT oid::int, spcname, pg_tablespace_location(oid) FROM pg_tablespace
WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY oid
"""
MAP_FILE = "tablespace_map"
MANIFEST = "backup_manifest"


def read_tablespaces(conn: PgConn) -> list[dict[str, Any]]:
    """`[{oid, name, location}]` of the cluster's tablespaces besides pg_default and pg_global."""
    with translate_psycopg_errors(f"listing tablespaces of {conn.display()}"), conn.connect() as pg:
        return [{"oid": o, "name": n, "location": loc} for o, n, loc in pg.execute(_TABLESPACES_SQL)]


def stream_name(oid: int) -> str:
    return f"{oid}.tar"


# ---- backup ---------------------------------------------------------------------------------------
class _TarSpool(Spool):
    """Follows only the tar files pg_basebackup writes, reading their headers on the way (TarTap)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.taps: dict[str, TarTap] = {}

    def follow(self, name: str) -> None:
        if name.endswith(".tar"):
            super().follow(name)

    def _stream(self, name: str) -> None:
        reader = self.readers[name]
        tap = self.taps[name] = TarTap(reader)
        try:
            self.streams[name] = self.writer.write(tap, name, progress=self.progress)
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            reader.close()
            os.unlink(self.path / name)


def basebackup_to_spool(writer: ChunkWriter, argv: list[str], conn: PgConn, *, progress: Any,
                        spool_parent: str | None = None, max_unread: int = 256 << 20,
                        watchdog_factory: Any = None) -> tuple[list, TarTap, str, int]:
    """Run pg_basebackup (`argv` with `-D -` replaced) into a spool directory, streaming every tar.

    Returns:
        (stream refs, the base.tar tap with the manifest tail filled in, stderr, return code).
    """
    from seawall.postgres.logical import follow_files

    with tempfile.TemporaryDirectory(prefix="seawall-basebackup-", dir=spool_parent) as tmp:
        out = Path(tmp) / "bb"
        out.mkdir()
        argv = [*argv[: argv.index("-D")], "-D", str(out), "--no-sync", *argv[argv.index("-D") + 2:]]
        spool = _TarSpool(out, writer, progress, max_unread)
        watch = Inotify.maybe(out)
        with open(Path(tmp) / "stderr", "w+") as err:
            proc = binaries.popen(argv, as_server_user=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=err, env=conn.tool_env(), start_new_session=True)
            watchdog = watchdog_factory(proc) if watchdog_factory else None
            try:
                follow_files(proc, watch, spool)
            finally:
                if watchdog:
                    watchdog.stop()
                _end(proc)
                if watch:
                    watch.close()
                spool.finish()
            err.seek(0)
            stderr = err.read()
        tap = spool.taps.get("base.tar") or TarTap(None)
        manifest = out / MANIFEST
        tap.manifest_tail = bytearray(manifest.read_bytes()[-(256 << 10):]) if manifest.exists() else bytearray()
        if manifest.exists():  # kept for pg_verifybackup (stdout mode puts it inside base.tar)
            with open(manifest, "rb") as fh:
                spool.streams[MANIFEST] = writer.write(fh, MANIFEST, progress=progress)
        refs = sorted(spool.streams.values(), key=lambda s: (s.name != "base.tar", s.name))
        return refs, tap, stderr, proc.returncode


def _end(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGCONT)  # it may be paused (spool full)
    if proc.poll() is None:
        proc.kill()
    proc.wait()


# ---- restore --------------------------------------------------------------------------------------
def plan_locations(manifest: Manifest, mapping: dict[str, str]) -> list[tuple[dict[str, Any], Path]]:
    """`[(tablespace, new location)]`; ConfigError for a mapping of no tablespace or a non-empty location."""
    tablespaces = manifest.source.get("tablespaces") or []
    known = {t["location"] for t in tablespaces}
    for old in mapping:
        if old not in known:
            raise ConfigError(f"--tablespace-map names {old}, which is no tablespace location of backup "
                              f"{manifest.backup_id}", hint="its tablespaces: " + (", ".join(sorted(known)) or "none"))
    out = []
    for ts in tablespaces:
        path = Path(mapping.get(ts["location"], ts["location"])).absolute()
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise ConfigError(f"tablespace {ts['name']!r} location {path} is not empty",
                              hint=f"map it elsewhere with --tablespace-map {ts['location']}=NEW_EMPTY_DIR")
        out.append((ts, path))
    return out


def prepare_locations(plan: list[tuple[dict[str, Any], Path]]) -> list[tuple[Path, bool]]:
    """Create each location 0700 for the server user; returns (path, existed) for cleaning up."""
    made = []
    for _, path in plan:
        existed = path.exists()
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)
        binaries.chown_to_server_user(path)
        made.append((path, existed))
    return made


def discard_locations(made: list[tuple[Path, bool]]) -> None:
    """Empty (or remove, when we created them) the tablespace locations of a failed restore."""
    for path, existed in made:
        if existed:
            for child in path.iterdir():
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
        else:
            shutil.rmtree(path, ignore_errors=True)


def write_map(datadir: Path, plan: list[tuple[dict[str, Any], Path]]) -> None:
    """Rewrite `tablespace_map` with the locations used (PostgreSQL links pg_tblspc from it)."""
    def escape(text: str) -> str:
        return "".join("\\" + ch if ch in "\\\r\n" else ch for ch in text)

    path = datadir / MAP_FILE
    path.write_text("".join(f"{ts['oid']} {escape(str(loc))}\n" for ts, loc in plan))
    binaries.chown_to_server_user(path)
