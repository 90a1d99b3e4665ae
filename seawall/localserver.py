"""What the MariaDB and Redis servers we start on this machine share: their OS user, their own
directory, and a process group we can stop, kill and clean up after.

Database servers refuse to run as root (or should not), so when seawall runs as root they run as
their own OS user (`mysql`, `redis`; an env var overrides it) through `runuser`, in a directory
handed over to that user. Each server gets its own session so a kill reaches its whole group.
(PostgreSQL's clusters predate this and keep their own helpers in `seawall.postgres.binaries`.)
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
from collections.abc import Iterable
from pathlib import Path

from seawall.errors import ConfigError


def find_tool(name: str, hint: str, dirs: Iterable[str] = ("/usr/bin",)) -> str:
    """Path of a server program (PATH first, then `dirs`), or ConfigError with the install `hint`."""
    for candidate in (shutil.which(name), *(f"{d}/{name}" for d in dirs)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ConfigError(f"{name} not found", hint=hint)


def server_user(env_var: str, default: str) -> str | None:
    """The OS user servers run as when we are root (None when we are not: run as ourselves)."""
    return os.environ.get(env_var, default) if os.geteuid() == 0 else None


def chown_tree(path: Path, user: str | None) -> None:
    """Hand `path` and everything below it to `user` (nothing to do when None)."""
    if not user:
        return
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def as_user(argv: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *argv] if user else argv


def refuse_busy_port(port: int) -> None:
    from seawall.postgres.cluster import port_in_use

    if port_in_use(port):
        raise ConfigError(f"port {port} is already in use", hint="choose a free port")


class ServerProcess:
    """A server process in its own session, with its directory `root` and its log `logfile`."""

    root: Path
    proc: subprocess.Popen | None = None

    @property
    def logfile(self) -> Path:
        raise NotImplementedError

    def spawn(self, argv: list[str], user: str | None) -> None:
        self.proc = subprocess.Popen(as_user(argv, user), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def remove(self) -> None:
        """Kill the server and delete the whole directory (nothing in it is kept: no clean shutdown)."""
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return " | ".join(self.logfile.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return "(no log)"
