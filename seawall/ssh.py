"""SSH connections with paramiko: strict host keys, bounded waits, and one error translator.

Host keys are checked against `known_hosts` (the system files, plus content or a file from the
`SshHost` block) or a pinned key, under a `RejectPolicy`: an unknown host is refused after the key
exchange and before any authentication, so no credential is offered to an impostor (borgstore does
the same; fsspec's `AutoAddPolicy` is the counter-example). Connect, banner, auth and channel
timeouts plus a keepalive turn a dead link into a retryable timeout instead of a hung task.

`translate_ssh_errors(what)` is the only place paramiko's exceptions become seawall's families.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import io
import os
import shlex
import socket
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import paramiko

from seawall.errors import AuthError, ConfigError, ObjectNotFound, PermanentError, RetryableError, SeawallError
from seawall.reach import mark_reached, unreachable
from seawall.redact import add_secret

KEY_PASSPHRASE_ENV = "SEAWALL_SSH_KEY_PASSPHRASE"  # an encrypted client key's passphrase
SYSTEM_KNOWN_HOSTS = ("~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts")
_KEY_CLASSES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


@dataclass(frozen=True)
class SshUrl:
    """`ssh://user@host[:port]/path`, parsed."""

    host: str
    path: str
    username: str | None = None
    port: int = 22

    def display(self) -> str:
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port != 22 else ""
        return f"ssh://{user}{host}{port}{self.path}"


def is_ssh_url(text: str) -> bool:
    return str(text).startswith("ssh://")


def parse_ssh_url(url: str) -> SshUrl:
    """Parse `ssh://user@host[:port]/absolute/path` (no password: keys only)."""
    parts = urlsplit(url)
    try:
        port = parts.port or 22
    except ValueError:
        raise ConfigError(f"invalid port in {url!r}", hint="use ssh://user@host:port/path") from None
    if parts.scheme != "ssh" or not parts.hostname:
        raise ConfigError(f"invalid SSH URL {url!r}", hint="use ssh://user@host[:port]/path")
    if parts.password is not None:
        raise ConfigError("passwords in SSH URLs are not supported", hint="authenticate with a key (--identity FILE)")
    if parts.query or parts.fragment or not parts.path.startswith("/"):
        raise ConfigError(f"invalid SSH URL {parts.hostname}: give an absolute path",
                          hint="use ssh://user@host[:port]/path")
    path = unquote(parts.path)
    path = "/" + path.strip("/") if path.strip("/") else "/"
    return SshUrl(host=parts.hostname, path=path, port=port,
                  username=unquote(parts.username) if parts.username else None)


@dataclass
class SshOptions:
    """Everything needed to open one SSH connection. Secrets are kept out of repr."""

    host: str
    port: int = 22
    username: str | None = None
    private_key: str | None = field(default=None, repr=False)  # key text (OpenSSH or PEM)
    key_path: str | None = None
    passphrase: str | None = field(default=None, repr=False)
    known_hosts: str | None = None  # known_hosts-format content
    known_hosts_path: str | None = None
    host_key: str | None = None  # pinned: "ssh-ed25519 AAAA..." or "SHA256:..."
    system_host_keys: bool = True
    connect_timeout: float = 15.0
    banner_timeout: float = 15.0
    auth_timeout: float = 15.0
    channel_timeout: float = 60.0
    keepalive: int = 15

    @property
    def username_or_default(self) -> str:
        return self.username or _local_user()

    def display(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.username_or_default}@{host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """How OpenSSH and paramiko name this host in known_hosts."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def _local_user() -> str:
    import getpass

    return getpass.getuser()


class UnknownHostKey(paramiko.SSHException):
    """The server's host key is in no known_hosts source and matches no pin."""

    def __init__(self, hostname: str, key: paramiko.PKey):
        self.hostname, self.key = hostname, key
        super().__init__(f"host {hostname} is not in known_hosts")


class _RejectUnknown(paramiko.RejectPolicy):
    """RejectPolicy with a typed exception (plain SSHException would look transient) and pins.

    Called by paramiko after the key exchange and before authentication, only when no known_hosts
    entry exists for the host: a key that differs from an entry raises BadHostKeyException earlier.
    """

    def __init__(self, pinned_fingerprint: str | None):
        self.pinned = pinned_fingerprint

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if self.pinned and key.fingerprint == self.pinned:
            return
        if self.pinned:
            raise paramiko.BadHostKeyException(hostname, key, _FingerprintOnly(self.pinned))
        raise UnknownHostKey(hostname, key)


class _FingerprintOnly:
    """Stands in for the expected key when only its fingerprint was pinned."""

    def __init__(self, fingerprint: str):
        self.fingerprint = fingerprint

    def get_base64(self) -> str:
        return self.fingerprint


def _add_known_hosts(keys: paramiko.HostKeys, text: str) -> None:
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line, lineno)
        except (paramiko.SSHException, binascii.Error, ValueError):
            entry = None
        if entry is None:  # unsupported key type (e.g. DSS) or a malformed line: not ours to judge
            continue
        for name in entry.hostnames:
            keys.add(name, entry.key.get_name(), entry.key)


def _pin(options: SshOptions, keys: paramiko.HostKeys) -> str | None:
    """Add a pinned public key to `keys`; returns a pinned SHA256 fingerprint instead, if that was given."""
    pin = (options.host_key or "").strip()
    if not pin:
        return None
    if pin.startswith("SHA256:"):
        return pin
    try:
        key_type, data = pin.split()[:2]
        key = paramiko.PKey.from_type_string(key_type, base64.b64decode(data))
    except (ValueError, binascii.Error, paramiko.SSHException, paramiko.UnknownKeyType):
        raise ConfigError(f"pinned host key for {options.host} is not a public key line",
                          hint="give 'ssh-ed25519 AAAA...' or a fingerprint 'SHA256:...'") from None
    keys.add(options.known_hosts_name, key.get_name(), key)
    return None


def load_private_key(options: SshOptions) -> paramiko.PKey | None:
    """The client key from the key text or the key file (None: use the agent and ~/.ssh keys)."""
    if options.private_key is None and options.key_path is None:
        return None
    where = f"key file {options.key_path}" if options.private_key is None else "the private key"
    if options.private_key is None:
        try:
            text = open(os.path.expanduser(options.key_path)).read()  # noqa: SIM115
        except OSError as exc:
            raise ConfigError(f"cannot read {where}: {exc.strerror}", hint="check --identity") from None
    else:
        text = options.private_key
    add_secret(options.passphrase)
    for cls in _KEY_CLASSES:
        try:
            return cls.from_private_key(io.StringIO(text), password=options.passphrase)
        except paramiko.PasswordRequiredException:
            raise AuthError(f"{where} is encrypted and no passphrase was given",
                            hint="set the key passphrase (SEAWALL_SSH_KEY_PASSPHRASE)") from None
        except (paramiko.SSHException, ValueError, TypeError):
            continue
    raise AuthError(f"{where} is not a usable private key, or its passphrase is wrong",
                    hint="give an ed25519, ECDSA or RSA key in OpenSSH or PEM format")


def connect(options: SshOptions) -> paramiko.SSHClient:
    """An authenticated SSHClient, host key verified; errors are seawall errors."""
    client = paramiko.SSHClient()
    try:
        keys = client.get_host_keys()
        if options.system_host_keys:
            for path in SYSTEM_KNOWN_HOSTS:
                _load_file(keys, os.path.expanduser(path), required=False)
        if options.known_hosts_path:
            _load_file(keys, os.path.expanduser(options.known_hosts_path), required=True)
        if options.known_hosts:
            _add_known_hosts(keys, options.known_hosts)
        pinned = _pin(options, keys)
        client.set_missing_host_key_policy(_RejectUnknown(pinned))
        pkey = load_private_key(options)
        with translate_ssh_errors(f"connecting to {options.display()}", endpoint=f"ssh {options.host}:{options.port}"):
            client.connect(
                options.host, options.port, username=options.username_or_default, pkey=pkey,
                allow_agent=pkey is None, look_for_keys=pkey is None,
                timeout=options.connect_timeout, banner_timeout=options.banner_timeout,
                auth_timeout=options.auth_timeout, channel_timeout=options.channel_timeout,
            )
            client.get_transport().set_keepalive(options.keepalive)
    except BaseException:
        client.close()
        raise
    return client


def _load_file(keys: paramiko.HostKeys, path: str, *, required: bool) -> None:
    try:
        with open(path) as fh:
            text = fh.read()
    except OSError as exc:
        if required:
            raise ConfigError(f"cannot read known_hosts file {path}: {exc.strerror}",
                              hint="check --known-hosts") from None
        return
    _add_known_hosts(keys, text)


def open_sftp(client: paramiko.SSHClient, options: SshOptions, what: str) -> paramiko.SFTPClient:
    """An SFTP session whose reads time out after the channel timeout (a dead link is retryable)."""
    with translate_ssh_errors(what):
        sftp = client.open_sftp()
        sftp.get_channel().settimeout(options.channel_timeout)
    return sftp


def _host_key_message(exc: paramiko.SSHException, what: str) -> AuthError:
    if isinstance(exc, UnknownHostKey):
        return AuthError(
            f"{what}: host {exc.hostname} is not in known_hosts; it offered {exc.key.get_name()} key "
            f"{exc.key.fingerprint}",
            hint="check that fingerprint with the host's admin, then add the key to known_hosts "
                 "(or pass --known-hosts FILE / pin it in the SshHost block); nothing was sent or read")
    assert isinstance(exc, paramiko.BadHostKeyException)
    return AuthError(
        f"{what}: host key of {exc.hostname} CHANGED: it offered {exc.key.get_name()} key {exc.key.fingerprint}, "
        f"known_hosts expects {exc.expected_key.fingerprint}",
        hint="possible man-in-the-middle; if the host was legitimately re-keyed, update known_hosts; "
             "nothing was sent or read")


@contextlib.contextmanager
def translate_ssh_errors(what: str, *, endpoint: str | None = None) -> Iterator[None]:
    """Map paramiko/socket exceptions raised inside the block to seawall's error families.

    Order matters: host-key and authentication failures are SSHException subclasses, and must be
    classified (permanent) before the transport SSHException catch-all (retryable). With
    `endpoint` (connecting), a refused connection before the host ever answered is a ConfigError
    (exit 2 at once, `seawall.reach`), later a RetryableError.
    """
    try:
        yield
    except SeawallError:
        raise
    except (ConnectionError, paramiko.ssh_exception.NoValidConnectionsError) as exc:
        first = unreachable(endpoint, exc, what, hint="check the host and port, and that sshd runs there") \
            if endpoint is not None else None
        if first is not None:
            raise first from exc
        raise RetryableError(f"{what}: connection lost or refused ({_first_line(exc)})",
                             hint="retrying; check that sshd is running") from exc
    except (UnknownHostKey, paramiko.BadHostKeyException) as exc:
        raise _host_key_message(exc, what) from exc
    except paramiko.AuthenticationException as exc:
        raise AuthError(f"{what}: authentication refused ({_first_line(exc)})",
                        hint="check the user name and the key (--identity); the host does not accept it") from exc
    except socket.gaierror as exc:
        raise ConfigError(f"{what}: cannot resolve the host name ({exc.strerror})", hint="check the host") from exc
    except TimeoutError as exc:
        raise RetryableError(f"{what}: timed out", hint="the host or the network is slow or down") from exc
    except EOFError as exc:
        raise RetryableError(f"{what}: connection lost or refused ({_first_line(exc)})",
                             hint="retrying; check that sshd is running") from exc
    except paramiko.SSHException as exc:
        raise RetryableError(f"{what}: SSH transport error ({_first_line(exc)})") from exc
    except OSError as exc:
        raise _os_error(exc, what) from exc
    if endpoint is not None:
        mark_reached(endpoint)


def _os_error(exc: OSError, what: str) -> SeawallError:
    """SFTP status codes arrive as OSError with an errno; paramiko's closed sockets carry none."""
    if exc.errno == errno.ENOENT:
        return ObjectNotFound(f"{what}: no such file or directory")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return PermanentError(f"{what}: permission denied", hint="connect as a user who may do this")
    if exc.errno == errno.ENOSPC:
        return PermanentError(f"{what}: no space left on the remote device")
    if exc.errno is None or exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.EHOSTUNREACH, errno.ENETUNREACH):
        return RetryableError(f"{what}: connection error ({_first_line(exc)})")
    return PermanentError(f"{what}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


# ---- sessions ---------------------------------------------------------------------------------


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
