"""Sessions: one SSH connection and SFTP session to a host, plus remote commands where a shell is allowed."""

from __future__ import annotations

import errno
import shlex
import stat
from collections.abc import Callable, Iterator

import paramiko

from seawall.errors import ConfigError, RetryableError
from seawall.ssh.connect import connect, open_sftp
from seawall.ssh.urls import SshOptions


def rpath(root: str, rel: str) -> bytes:
    """The remote path of `rel` under `root`, as bytes (non-UTF-8 names round-trip)."""
    full = root if rel == "." else f"{root.rstrip('/')}/{rel}"
    return full.encode("utf-8", "surrogateescape")


class RemoteSession:
    """One SSH connection and SFTP session to a host, plus remote commands when a shell is allowed.

    `bytes_read` counts the file contents received, for tests and reports.
    """

    def __init__(self, options: SshOptions):
        self.options = options
        self.display = options.display()
        self.client = connect(options)
        try:
            self.sftp = open_sftp(self.client, options, f"opening SFTP on {self.display}")
        except BaseException:
            self.client.close()
            raise
        self.bytes_read = 0
        self._shell: bool | None = None

    def __enter__(self) -> RemoteSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def run(self, command: str, *, stdin: Iterator[bytes] | None = None,
            on_stdout: Callable[[bytes], None] | None = None) -> tuple[int, bytes, bytes]:
        """Run a remote command; returns (exit status, stdout unless streamed to `on_stdout`, stderr)."""
        chan = self.client.get_transport().open_session(timeout=self.options.channel_timeout)
        chan.settimeout(self.options.channel_timeout)
        out, err = bytearray(), bytearray()
        try:
            chan.exec_command(command)
            for piece in stdin or ():
                chan.sendall(piece)
            chan.shutdown_write()
            while True:
                while chan.recv_stderr_ready():  # unread stderr would hold the window shut
                    err += chan.recv_stderr(65536)
                data = chan.recv(1 << 20)
                if not data:
                    break
                if on_stdout:
                    on_stdout(data)
                else:
                    out += data
            while True:
                data = chan.recv_stderr(65536)
                if not data:
                    break
                err += data
            status = chan.recv_exit_status()
        finally:
            chan.close()
        if status == -1:  # the channel closed without an exit status: the link or sshd went away
            raise RetryableError(f"remote command on {self.display} was cut off")
        return status, bytes(out), bytes(err)

    def has_shell(self, root: str) -> bool:
        """True if GNU find runs on the host (probed once; False under an SFTP-only account)."""
        if self._shell is None:
            try:
                status, out, _ = self.run(f"LC_ALL=C find -P {shlex.quote(root)} -maxdepth 0 -printf %y")
                self._shell = status == 0 and out == b"d"
            except (RetryableError, paramiko.SSHException):
                if not self.client.get_transport().is_active():
                    raise  # the link died: retry the task, do not silently downgrade the listing
                self._shell = False  # exec refused by the server (SFTP-only account)
        return self._shell


def check_remote_dir(session: RemoteSession, root: str, what: str = "source path") -> None:
    """ConfigError unless `root` is a readable directory on the host."""
    where = f"{what} {root} on {session.display}"
    try:
        st = session.sftp.stat(rpath(root, "."))
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise ConfigError(f"{where} does not exist", hint="check the path") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise ConfigError(f"{where} is not accessible", hint="connect as a user that can read it") from None
        raise
    if not stat.S_ISDIR(st.st_mode or 0):
        raise ConfigError(f"{where} is not a directory", hint="give the folder to back up")
