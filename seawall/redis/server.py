"""Throwaway local Redis servers (Debian's `redis-server`): for tests, restores and verification.

A server gets a private directory (its socket, its `dump.rdb`), listens on 127.0.0.1 on its own
port, saves nothing on its own (`save ""`), and runs as the `redis` OS user when we are root
(`SEAWALL_REDIS_OS_USER` overrides it). `DEBUG` is allowed for local connections only, so checks
can ask for `DEBUG DIGEST`.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from seawall.errors import PermanentError, RetryableError
from seawall.localserver import ServerProcess, chown_tree, find_tool, refuse_busy_port, server_user

INSTALL_HINT = "install the server: apt-get install redis-server redis-tools"


def tool(name: str) -> str:
    return find_tool(name, INSTALL_HINT)


def _os_user() -> str | None:
    return server_user("SEAWALL_REDIS_OS_USER", "redis")


class LocalRedis(ServerProcess):
    """A redis-server with its own directory.

    Example:
        >>> server = LocalRedis.create(); server.start(); server.client().ping()  # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike, port: int | None = None, *, password: str | None = None,
                 appendonly: bool = False):
        from seawall.postgres.cluster import free_port

        self.root, self.port = Path(root), port or free_port()
        self.password, self.appendonly = password, appendonly
        self.proc: subprocess.Popen | None = None

    @classmethod
    def create(cls, base: str | os.PathLike | None = None, **kwargs) -> LocalRedis:
        return cls(tempfile.mkdtemp(prefix="seawall-redis-", dir=str(base) if base else None), **kwargs)

    @property
    def socket(self) -> Path:
        return self.root / "redis.sock"

    @property
    def rdb(self) -> Path:
        return self.root / "dump.rdb"

    @property
    def logfile(self) -> Path:
        return self.root / "redis.log"

    def argv(self) -> list[str]:
        args = [tool("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--unixsocket",
                str(self.socket), "--unixsocketperm", "700", "--dir", str(self.root), "--save", "",
                "--appendonly", "yes" if self.appendonly else "no", "--daemonize", "no",
                "--logfile", str(self.logfile), "--enable-debug-command", "local",
                # A replica's full sync (redis-cli --rdb) starts at once instead of waiting 5 s for
                # more replicas (Redis 7's default diskless-sync delay).
                "--repl-diskless-sync-delay", "0"]
        if self.password:  # only test fixtures set one; a real deployment's server is not ours
            args += ["--requirepass", self.password]
        return args

    def start(self, *, timeout: float = 60) -> None:
        refuse_busy_port(self.port)
        chown_tree(self.root, _os_user())
        self.spawn(self.argv(), _os_user())
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until the server answers PING (and has finished loading its dataset)."""
        import redis

        deadline, last = time.monotonic() + timeout, "not answering"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise PermanentError(f"redis-server in {self.root} stopped: {self.log_tail(3)}")
            try:
                if self.client().ping():
                    return
            except (redis.ConnectionError, redis.BusyLoadingError, redis.ResponseError) as exc:
                last = str(exc)
            time.sleep(0.05)
        raise RetryableError(f"redis-server on port {self.port} not ready after {timeout:.0f}s: {last}")

    def client(self, db: int = 0):
        import redis

        return redis.Redis(unix_socket_path=str(self.socket), db=db, password=self.password, socket_timeout=120)

    def url(self, *, with_password: bool = False) -> str:
        from urllib.parse import quote

        auth = f":{quote(self.password, safe='')}@" if self.password and with_password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def conn(self):
        from pydantic import SecretStr

        from seawall.redis.conn import RedisConn

        return RedisConn(socket=str(self.socket), password=SecretStr(self.password) if self.password else None)
