"""`translate_ssh_errors(what)`: the only place paramiko's and the socket's exceptions become seawall's.

Order matters: host-key and authentication failures are SSHException subclasses, classified
(permanent) before the transport catch-all (retryable).
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterator

import paramiko

from seawall.errors import AuthError, ConfigError, ObjectNotFound, PermanentError, RetryableError, SeawallError
from seawall.reach import mark_reached, unreachable
from seawall.ssh.hostkeys import UnknownHostKey


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
        raise RetryableError(f"{what}: connection lost or refused ({first_line(exc)})",
                             hint="retrying; check that sshd is running") from exc
    except (UnknownHostKey, paramiko.BadHostKeyException) as exc:
        raise _host_key_message(exc, what) from exc
    except paramiko.AuthenticationException as exc:
        raise AuthError(f"{what}: authentication refused ({first_line(exc)})",
                        hint="check the user name and the key (--identity); the host does not accept it") from exc
    except socket.gaierror as exc:
        raise ConfigError(f"{what}: cannot resolve the host name ({exc.strerror})", hint="check the host") from exc
    except TimeoutError as exc:
        raise RetryableError(f"{what}: timed out", hint="the host or the network is slow or down") from exc
    except EOFError as exc:
        raise RetryableError(f"{what}: connection lost or refused ({first_line(exc)})",
                             hint="retrying; check that sshd is running") from exc
    except paramiko.SSHException as exc:
        raise RetryableError(f"{what}: SSH transport error ({first_line(exc)})") from exc
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
        return RetryableError(f"{what}: connection error ({first_line(exc)})")
    return PermanentError(f"{what}: {first_line(exc)}")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
