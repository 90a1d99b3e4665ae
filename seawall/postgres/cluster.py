"""Throwaway and local PostgreSQL clusters: initdb, configure, start, stop, promote, remove.

Used by the test fixtures, by restore verification's scratch clusters, by point-in-time restores
into a new data directory, and by the demo. Clusters listen on a private Unix socket directory and
127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from seawall.errors import ConfigError, PermanentError, RetryableError
from seawall.postgres import binaries


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def make_private_dir(prefix: str, parent: str | None = None) -> Path:
    """A new directory owned by the server OS user (PostgreSQL insists on 0700 data dirs)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    binaries.chown_to_server_user(path)
    return path


class LocalCluster:
    """A PostgreSQL cluster on this machine, operated with pg_ctl."""

    def __init__(self, datadir: str | os.PathLike, port: int | None = None, *, socket_dir: str | None = None):
        self.datadir = Path(datadir)
        self.port = port or free_port()
        self.socket_dir = Path(socket_dir) if socket_dir else self.datadir.parent / "sock"
        self.logfile = self.datadir.parent / f"{self.datadir.name}.log"

    def __repr__(self) -> str:
        return f"LocalCluster({str(self.datadir)!r}, port={self.port})"

    # ---- creation ---------------------------------------------------------------------------------
    @classmethod
    def create(cls, base: str | os.PathLike | None = None, *, port: int | None = None,
               settings: dict[str, Any] | None = None, checksums: bool = True) -> LocalCluster:
        """initdb a new cluster in a fresh directory under `base` (default: a new temp dir)."""
        root = make_private_dir("seawall-pg-", str(base) if base else None)
        cluster = cls(root / "data", port, socket_dir=str(root / "sock"))
        cluster.socket_dir.mkdir()
        binaries.chown_to_server_user(cluster.socket_dir)
        argv = [binaries.tool("initdb"), "-D", str(cluster.datadir), "-U", "postgres", "--auth=trust",
                "-E", "UTF8", "--locale=C.UTF-8"] + (["--data-checksums"] if checksums else [])
        result = binaries.run(argv, check=False)
        if result.returncode != 0:
            raise PermanentError(f"initdb failed in {cluster.datadir}: {result.stderr.strip().splitlines()[-1:]}")
        cluster.configure({"listen_addresses": "127.0.0.1", "port": cluster.port,
                           "unix_socket_directories": str(cluster.socket_dir), "fsync": "on",
                           "shared_buffers": "128MB", "max_wal_senders": 10, "wal_level": "replica",
                           **(settings or {})})
        return cluster

    def configure(self, settings: dict[str, Any]) -> None:
        """Append settings to postgresql.auto.conf (later lines win; takes effect on (re)start)."""
        lines = [f"{k} = {_quote(v)}\n" for k, v in settings.items()]
        conf = self.datadir / "postgresql.auto.conf"
        with open(conf, "a") as fh:
            fh.writelines(lines)
        binaries.chown_to_server_user(conf)
        if "port" in settings:
            self.port = int(settings["port"])

    # ---- running ----------------------------------------------------------------------------------
    def start(self, *, timeout: int = 60, wait: bool = True, once: dict[str, str] | None = None) -> None:
        """pg_ctl start; `once`: settings for this run of the server only (`-c name=value`, not
        written to its configuration)."""
        if port_in_use(self.port):
            raise ConfigError(f"port {self.port} is already in use", hint="choose a free port")
        options = f"-p {self.port} -k {self.socket_dir}" + "".join(f" -c {k}={v}" for k, v in (once or {}).items())
        argv = [binaries.tool("pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile),
                "-o", options, "-t", str(timeout), "start"]
        if not wait:
            argv.insert(-1, "-W")
        self._touch_log()
        result = binaries.run(argv, check=False)
        if result.returncode != 0:
            raise PermanentError(f"PostgreSQL in {self.datadir} failed to start: {self.log_tail(3)}")

    def _touch_log(self) -> None:
        if not self.logfile.exists():
            self.logfile.touch()
            binaries.chown_to_server_user(self.logfile)

    def stop(self, mode: str = "fast", *, timeout: int = 60) -> None:
        if not self.is_running():
            return
        binaries.run([binaries.tool("pg_ctl"), "-D", str(self.datadir), "-m", mode, "-t", str(timeout), "-w",
                      "stop"], check=False)

    def kill(self) -> None:
        """SIGKILL the postmaster (fault injection: a crash, not a shutdown)."""
        pid = self.postmaster_pid()
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.datadir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def is_running(self) -> bool:
        pid = self.postmaster_pid()
        if not pid:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return not _dead(pid)

    def promote(self, *, timeout: int = 60) -> None:
        binaries.run([binaries.tool("pg_ctl"), "-D", str(self.datadir), "-w", "-t", str(timeout), "promote"])

    def remove(self) -> None:
        """Stop (immediate) and delete the cluster's whole directory."""
        if self.is_running():
            self.stop("immediate")
            if self.is_running():
                self.kill()
        shutil.rmtree(self.datadir.parent, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return " | ".join(self.logfile.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # ---- connecting -------------------------------------------------------------------------------
    def conninfo(self, dbname: str = "postgres", user: str = "postgres") -> str:
        from psycopg.conninfo import make_conninfo  # quotes names with spaces or quotes

        return make_conninfo(host=str(self.socket_dir), port=self.port, user=user, dbname=dbname)

    def connect(self, dbname: str = "postgres", **kwargs: Any):
        import psycopg

        return psycopg.connect(self.conninfo(dbname), autocommit=True, **kwargs)

    def execute(self, sql: str, params: Any = None, dbname: str = "postgres") -> list[tuple]:
        with self.connect(dbname) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def wait_ready(self, *, timeout: float = 60, writable: bool = False) -> None:
        """Wait until the server accepts connections (and, if asked, is out of recovery)."""
        import psycopg

        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                in_recovery = self.execute("SELECT pg_is_in_recovery()")[0][0]
                if not writable or not in_recovery:
                    return
                last = "still in recovery"
            except psycopg.OperationalError as exc:
                last = str(exc).strip().splitlines()[0] if str(exc) else "not accepting connections"
                if not self.is_running():
                    raise PermanentError(f"PostgreSQL in {self.datadir} stopped: {self.log_tail(3)}") from None
            time.sleep(0.2)
        raise RetryableError(f"PostgreSQL on port {self.port} not ready after {timeout:.0f}s: {last}")


def _dead(pid: int) -> bool:
    """Whether `pid` has exited but was not reaped (a zombie still answers kill(pid, 0)).

    pg_ctl leaves the postmaster to PID 1, and where PID 1 does not reap orphans (some container
    and VM init processes, this machine's among them) a crashed postmaster stays a zombie, its
    postmaster.pid in place: a restore waiting for it used to wait for its whole timeout.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (or the process just went): kill(pid, 0) had the last word
        return False
    return stat[stat.rindex(")") + 2:][:1] in ("Z", "X")


def _quote(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def run_sql_file(cluster: LocalCluster, path: str, dbname: str = "postgres") -> subprocess.CompletedProcess:
    return binaries.run([binaries.tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", cluster.conninfo(dbname),
                         "-f", path])
