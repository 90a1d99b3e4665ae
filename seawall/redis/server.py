"""Throwaway local Redis servers (Debian's `redis-server`): for tests, restores and verification.

A server gets a private directory (its socket, its `dump.rdb`), listens on 127.0.0.1 on its own
port, saves nothing on its own (`save ""`), and runs as the `redis` OS user when we are root
(`SEAWALL_REDIS_OS_USER` overrides it). `DEBUG` is allowed for local connections only, so checks
can ask for `DEBUG DIGEST`.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from seawall.errors import ConfigError, PermanentError, RetryableError

INSTALL_HINT = "install the server: apt-get install redis-server redis-tools"


def tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
    if not path:
        raise ConfigError(f"{name} not found", hint=INSTALL_HINT)
    return path


def _os_user() -> str | None:
    return os.environ.get("SEAWALL_REDIS_OS_USER", "redis") if os.geteuid() == 0 else None


def _chown(path: Path) -> None:
    user = _os_user()
    if user:
        entry = pwd.getpwnam(user)
        for root, dirs, files in os.walk(path):
            for name in [*dirs, *files]:
                os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
        os.chown(path, entry.pw_uid, entry.pw_gid)


class LocalRedis:
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

    def argv(self) -> list[str]:
        args = [tool("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--unixsocket",
                str(self.socket), "--unixsocketperm", "700", "--dir", str(self.root), "--save", "",
                "--appendonly", "yes" if self.appendonly else "no", "--daemonize", "no",
                "--logfile", str(self.root / "redis.log"), "--enable-debug-command", "local",
                # A replica's full sync (redis-cli --rdb) starts at once instead of waiting 5 s for
                # more replicas (Redis 7's default diskless-sync delay).
                "--repl-diskless-sync-delay", "0"]
        if self.password:  # only test fixtures set one; a real deployment's server is not ours
            args += ["--requirepass", self.password]
        return args

    def start(self, *, timeout: float = 60) -> None:
        from seawall.postgres.cluster import port_in_use

        if port_in_use(self.port):
            raise ConfigError(f"port {self.port} is already in use", hint="choose a free port")
        _chown(self.root)
        user = _os_user()
        argv = ["runuser", "-u", user, "--", *self.argv()] if user else self.argv()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
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

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return " | ".join((self.root / "redis.log").read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return "(no log)"
