"""PostgreSQL nodes a drill operates on: the same shell commands, run locally or over SSH.

A `PgNode` knows how to reach the server (a `PgConn`) and how to run server-side commands
(`pg_ctl`, `pg_rewind`, `pg_basebackup`, reading and writing files in the data directory) as the
server OS user. `LocalNode` runs them on this machine (as `postgres` when we are root, through
`seawall.postgres.binaries`); `SshNode` runs the very same command lines through paramiko's
`exec_command`, prefixed with `sudo -n -u postgres` unless the SSH login already is that user.
Everything above this module (`seawall.drill.ops`) is written once against `PgNode`.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from seawall.errors import ConfigError, PermanentError, RetryableError
from seawall.postgres import binaries
from seawall.postgres.conn import PgConn


@dataclass(frozen=True)
class CmdResult:
    """Exit code and output of one command."""

    rc: int
    out: str = ""
    err: str = ""

    def first_error_line(self) -> str:
        text = (self.err or self.out).strip().splitlines()
        return text[-1] if text else f"exit code {self.rc}"


@runtime_checkable
class PgNode(Protocol):
    """A PostgreSQL server the drill can query and operate."""

    name: str
    conn: PgConn
    datadir: str
    bindir: str
    logfile: str

    def location(self) -> str:
        """Where the node lives (`local` or `ssh://user@host:port`): part of its identity."""

    def sh(self, command: str, *, timeout: float = 600) -> CmdResult:
        """Run a shell command line as the server OS user."""

    def check_access(self) -> str:
        """Prove we can operate the node (SSH: host key and login); returns a detail line."""

    def close(self) -> None:
        """Release connections."""


def tool(node: PgNode, name: str) -> str:
    return shlex.quote(str(Path(node.bindir) / name))


@dataclass
class LocalNode:
    """A cluster on this machine, operated with pg_ctl on its data directory.

    Example:
        >>> node = LocalNode("primary", PgConn("host=/run/pg port=5432 user=postgres"), "/srv/pg/data")
    """

    name: str
    conn: PgConn
    datadir: str
    bindir: str = ""
    logfile: str = ""

    def __post_init__(self) -> None:
        self.datadir = str(Path(self.datadir).absolute())
        self.bindir = self.bindir or str(binaries.bindir())
        self.logfile = self.logfile or f"{self.datadir}.log"

    def location(self) -> str:
        return "local"

    def sh(self, command: str, *, timeout: float = 600) -> CmdResult:
        try:
            proc = binaries.run(["sh", "-c", command], check=False, timeout=timeout)
        except OSError as exc:
            raise PermanentError(f"{self.name}: cannot run a command: {exc}") from exc
        except subprocess.TimeoutExpired as exc:  # only a timeout is transient; anything else is a bug
            raise RetryableError(f"{self.name}: command timed out after {timeout:.0f}s") from exc
        return CmdResult(proc.returncode, proc.stdout, proc.stderr)

    def check_access(self) -> str:
        if not Path(self.datadir, "PG_VERSION").exists():
            raise ConfigError(f"{self.name}: {self.datadir} is not a PostgreSQL data directory",
                              hint="check the node's datadir")
        return f"data directory {self.datadir}"

    def close(self) -> None:
        return None


@dataclass
class SshNode:
    """A cluster on an SSH host: the same commands through paramiko's exec_command.

    The login user is the server OS user (commands run as is), root (`runuser -u <server user>`),
    or another user allowed `sudo -n -u <server user>` without a password.

    Example:
        >>> node = SshNode("standby", PgConn("host=db2 user=postgres"), "/var/lib/postgresql/15/main",
        ...                "/usr/lib/postgresql/15/bin", ssh=SshHost.load("db2").ssh_options())  # doctest: +SKIP
    """

    name: str
    conn: PgConn
    datadir: str
    bindir: str
    ssh: object = None  # seawall.ssh.SshOptions
    logfile: str = ""
    server_user: str = "postgres"
    _client: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.logfile = self.logfile or f"{self.datadir.rstrip('/')}.log"

    def location(self) -> str:
        return f"ssh://{self.ssh.display()}"

    def _connect(self):
        from seawall.ssh import connect

        if self._client is None or not self._client.get_transport() or not self._client.get_transport().is_active():
            self._client = connect(self.ssh)
        return self._client

    def wrap(self, command: str) -> str:
        """The command line as sent: via sudo unless we log in as the server user."""
        login, user = self.ssh.username_or_default, shlex.quote(self.server_user)
        if login == self.server_user:
            return f"sh -c {shlex.quote(command)}"
        become = f"runuser -u {user} --" if login == "root" else f"sudo -n -u {user}"
        return f"{become} sh -c {shlex.quote('cd / && ' + command)}"

    def sh(self, command: str, *, timeout: float = 600) -> CmdResult:
        from seawall.ssh import translate_ssh_errors

        client = self._connect()
        with translate_ssh_errors(f"{self.name}: running a command on {self.ssh.display()}"):
            _, stdout, stderr = client.exec_command(self.wrap(command), timeout=timeout)
            out = stdout.read().decode(errors="replace")
            err = stderr.read().decode(errors="replace")
            rc = stdout.channel.recv_exit_status()
        return CmdResult(rc, out, err)

    def check_access(self) -> str:
        res = self.sh(f"test -f {shlex.quote(self.datadir + '/PG_VERSION')} && echo ok")
        if res.out.strip() != "ok":
            raise ConfigError(f"{self.name}: {self.datadir} on {self.ssh.display()} is not a PostgreSQL data "
                              f"directory, or not readable by {self.server_user} ({res.first_error_line()})")
        return f"{self.ssh.display()} host key verified; data directory {self.datadir}"

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def server_user_env() -> str:
    return os.environ.get("SEAWALL_PG_OS_USER", "postgres")
