"""Throwaway and local MariaDB servers: install a data directory, start, stop, remove.

Used by the test fixtures, by restore verification's scratch servers and by physical restores.
`mariadbd` refuses to run as root unless told to, so servers run as the `mysql` OS user (Debian's
`mariadb-server` creates it; `SEAWALL_MARIADB_OS_USER` overrides it). A server listens on 127.0.0.1
and on a private socket, with its own data directory, and reads no system option file
(`--no-defaults`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from seawall.errors import ConfigError, PermanentError, RetryableError
from seawall.localserver import ServerProcess, as_user, chown_tree, find_tool, refuse_busy_port, server_user

INSTALL_HINT = "install the server: apt-get install mariadb-server mariadb-backup mariadb-client"


def tool(name: str) -> str:
    """Path of a MariaDB program, or ConfigError naming the package to install."""
    return find_tool(name, INSTALL_HINT, ("/usr/sbin", "/usr/bin"))


def os_user() -> str | None:
    """The OS user servers run as when we are root (None when we are not: run as ourselves)."""
    return server_user("SEAWALL_MARIADB_OS_USER", "mysql")


def chown_to_server_user(path: Path) -> None:
    chown_tree(path, os_user())


def require_reachable(path: Path) -> None:
    """ConfigError unless the server's OS user can enter `path`'s parent (a data directory's home)."""
    user = os_user()
    if not user:
        return
    parent = Path(path).absolute().parent
    while not parent.exists():
        parent = parent.parent
    if subprocess.run(["runuser", "-u", user, "--", "test", "-x", str(parent)], check=False).returncode != 0:
        raise ConfigError(f"the {user} OS user cannot enter {parent}, so mariadbd cannot use a data directory "
                          "there", hint="pick a directory under one it can reach (e.g. /var/tmp or /srv)")


def free_port() -> int:
    from seawall.postgres.cluster import free_port as pick

    return pick()


class LocalServer(ServerProcess):
    """A MariaDB server on this machine with its own data directory under `root`.

    Example:
        >>> server = LocalServer.create(binlog=True); server.start()  # doctest: +SKIP
        >>> server.execute("SELECT 1")  # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike, port: int | None = None, *, binlog: bool = False,
                 settings: dict[str, Any] | None = None, datadir: str | os.PathLike | None = None):
        self.root = Path(root)
        self._datadir = Path(datadir) if datadir else None
        self.port = port or free_port()
        self.binlog = binlog
        self.settings = dict(settings or {})
        self.proc: subprocess.Popen | None = None

    def __repr__(self) -> str:
        return f"LocalServer({str(self.root)!r}, port={self.port})"

    @property
    def datadir(self) -> Path:
        return self._datadir or self.root / "data"

    @property
    def socket(self) -> Path:
        return self.root / "mysqld.sock"

    @property
    def logfile(self) -> Path:
        return self.root / "error.log"

    @classmethod
    def create(cls, base: str | os.PathLike | None = None, *, port: int | None = None, binlog: bool = False,
               settings: dict[str, Any] | None = None) -> LocalServer:
        """A new, empty data directory (mariadb-install-db) in a fresh directory under `base`."""
        root = Path(tempfile.mkdtemp(prefix="seawall-mariadb-", dir=str(base) if base else None))
        server = cls(root, port, binlog=binlog, settings=settings)
        chown_to_server_user(root)
        argv = [tool("mariadb-install-db"), "--no-defaults", f"--datadir={server.datadir}",
                "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"]
        result = subprocess.run(as_user(argv, os_user()), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            last = (result.stderr or result.stdout).strip().splitlines()[-1:]
            raise PermanentError(f"mariadb-install-db failed in {root}: {' '.join(last)}")
        return server

    def argv(self) -> list[str]:
        args = [tool("mariadbd"), "--no-defaults", f"--datadir={self.datadir}", f"--port={self.port}",
                "--bind-address=127.0.0.1", f"--socket={self.socket}", f"--pid-file={self.root / 'mysqld.pid'}",
                f"--log-error={self.logfile}", "--skip-name-resolve", "--innodb-buffer-pool-size=128M",
                "--innodb-log-file-size=96M", "--max-allowed-packet=64M", "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci", "--default-time-zone=+00:00"]
        if self.binlog:
            args += [f"--log-bin={self.root / 'binlog' / 'mariadb-bin'}", "--server-id=1", "--binlog-format=ROW",
                     "--sync-binlog=1"]
        args += [f"--{k.replace('_', '-')}={v}" for k, v in self.settings.items()]
        return args

    def start(self, *, timeout: float = 60) -> None:
        refuse_busy_port(self.port)
        if self.binlog:
            (self.root / "binlog").mkdir(exist_ok=True)
        chown_to_server_user(self.root)
        self.spawn(self.argv(), os_user())
        self.wait_ready(timeout=timeout)

    def wait_ready(self, *, timeout: float = 60) -> None:
        """Wait until the server accepts connections on its socket."""
        import pymysql

        deadline = time.monotonic() + timeout
        last = "not accepting connections"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise PermanentError(f"MariaDB in {self.datadir} stopped: {self.log_tail(3)}")
            try:
                pymysql.connect(unix_socket=str(self.socket), user="root", connect_timeout=2).close()
                return
            except pymysql.err.OperationalError as exc:
                last = str(exc)
            time.sleep(0.1)
        raise RetryableError(f"MariaDB on port {self.port} not ready after {timeout:.0f}s: {last}")

    def connect(self, database: str | None = None, **kwargs: Any):
        """A root connection over the private socket (autocommit)."""
        import pymysql

        return pymysql.connect(unix_socket=str(self.socket), user="root", database=database, autocommit=True,
                               **kwargs)

    def execute(self, sql: str, params: Any = None, database: str | None = None) -> list[tuple]:
        with self.connect(database) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []

    def dsn(self, user: str = "root", database: str = "", password: str | None = None) -> str:
        """A `mysql://` DSN over the private socket (or TCP when a password is given)."""
        from urllib.parse import quote

        auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password is not None else "")
        if password is None:
            return f"mysql://{auth}@localhost/{quote(database, safe='')}?socket={quote(str(self.socket), safe='/')}"
        return f"mysql://{auth}@127.0.0.1:{self.port}/{quote(database, safe='')}"

    def stop(self, *, timeout: float = 60) -> None:
        """Clean shutdown (SIGTERM), then SIGKILL if it lingers."""
        if not self.is_running():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
