"""SFTP object store (paramiko): a vault is one folder on an SSH host.

URL form: `sftp://user@host[:port]/absolute/path[?identity=KEY_FILE&known_hosts=FILE]`. The host
key is checked the way SSH sources check it (`seawall.ssh.connect`): the system known_hosts files
plus an optional extra file, under a reject policy; an unknown or changed key is refused before
any credential is sent. The client key is the `identity` file (else the agent and ~/.ssh keys);
an encrypted key's passphrase comes from SEAWALL_SSH_KEY_PASSPHRASE. No password in the URL.

Writes are atomic: a temporary `.tmp-*` name in the target folder, `fsync@openssh.com` where the
server offers it, then `posix-rename@openssh.com` over the final name (plain SFTP rename, which
OpenSSH implements as link + unlink, is the create-if-absent of `put_if_absent`). A crash leaves at
most a temporary file, which listings skip and GC removes once it is old.

One SSH connection per store; one SFTP session (channel) per thread on it, since paramiko matches
responses to requests per session. All paramiko errors go through `translate_ssh_errors`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import stat as statmod
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import paramiko
from paramiko.sftp import CMD_EXTENDED

from seawall.errors import ConfigError, ObjectNotFound, RetryableError
from seawall.ssh import KEY_PASSPHRASE_ENV, SshOptions, connect, open_sftp, translate_ssh_errors
from seawall.stores.base import TEMPORARY_MAX_AGE, ObjectInfo, ObjectStore

__all__ = ["SftpStore", "from_url"]

_URL_PARAMS = frozenset({"identity", "known_hosts"})
_OPTIONS = frozenset({"ssh_options", "key_path", "private_key", "passphrase", "known_hosts_path",
                      "known_hosts", "host_key", "system_host_keys", "connect_timeout", "channel_timeout",
                      "keepalive"})
_READ_AHEAD = 64  # outstanding 32 KiB read requests per object (paramiko's prefetch window)


class SftpStore(ObjectStore):
    """Objects are files below `root` on the SSH host of `options`; keys map to relative paths.

    Args:
        options: How to reach and authenticate to the host (host keys from known_hosts only).
        root: Absolute folder of the vault on the host.
        create: Create `root` (and its parents) if missing; otherwise it must exist.

    Example:
        >>> store = SftpStore(SshOptions("backup.example.com", username="vault"), "/srv/vault")  # doctest: +SKIP
        >>> store.put("config", b"...")  # doctest: +SKIP
    """

    remote = True
    read_ahead = 4 << 20  # one request per chunk is a round trip: read the neighbours with it

    def __init__(self, options: SshOptions, root: str, *, create: bool = False):
        if not root.startswith("/"):
            raise ConfigError(f"SFTP vault path {root!r} is not absolute", hint="use sftp://user@host/absolute/path")
        self.options = options
        self.root = "/" + root.strip("/") if root.strip("/") else "/"
        self.display_url = f"sftp://{options.display()}{self.root}"
        self._tmp_prefix = secrets.token_hex(6)
        self._tmp_counter = itertools.count()
        self._lock = threading.Lock()
        self._client: paramiko.SSHClient | None = None
        self._local = threading.local()
        self._sessions: list[paramiko.SFTPClient] = []
        self._dirs: set[str] = set()
        self._fsync = True  # until the server answers that it has no fsync@openssh.com
        self._open_root(create)

    # ---- plumbing -----------------------------------------------------------------------------
    def _open_root(self, create: bool) -> None:
        try:
            if create:
                self._mkdirs(self.root)
            st = self._stat_path(self.root, f"opening {self.display_url}")
        except BaseException:
            self.close()
            raise
        if st is None or not statmod.S_ISDIR(st.st_mode or 0):
            self.close()
            raise ConfigError(f"vault folder {self.root} does not exist on {self.options.display()}",
                              hint="check the URL or run `seawall init`")

    def _transport_alive(self) -> bool:
        transport = self._client.get_transport() if self._client is not None else None
        return transport is not None and transport.is_active()

    @property
    def sftp(self) -> paramiko.SFTPClient:
        """This thread's SFTP session; the connection is (re)made on first use or after it died."""
        session = getattr(self._local, "sftp", None)
        if session is not None and self._local.client is self._client and self._transport_alive():
            return session
        with self._lock:
            if not self._transport_alive():
                self._drop_connection()
                self._client = connect(self.options)
            session = open_sftp(self._client, self.options, f"opening SFTP on {self.options.display()}")
            self._sessions.append(session)
            self._local.sftp, self._local.client = session, self._client
        return session

    def _drop_connection(self) -> None:
        sessions, self._sessions = self._sessions, []
        for session in sessions:
            with contextlib.suppress(Exception):
                session.close()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
        self._client = None

    def _path(self, key: str) -> str:
        return f"{self.root.rstrip('/')}/{key}"

    def _what(self, verb: str, key: str) -> str:
        return f"{verb} {key} in {self.display_url}"

    def _stat_path(self, path: str, what: str) -> paramiko.SFTPAttributes | None:
        try:
            with translate_ssh_errors(what):
                return self.sftp.stat(path)
        except ObjectNotFound:
            return None

    def _mkdirs(self, path: str) -> None:
        if path in self._dirs or path == "/":
            return
        with translate_ssh_errors(f"creating folder {path} in {self.display_url}"):
            try:
                self.sftp.stat(path)
            except FileNotFoundError:
                self._mkdirs(os.path.dirname(path))
                try:
                    self.sftp.mkdir(path)
                except OSError:  # made meanwhile by another writer: fine if it is there now
                    self.sftp.stat(path)
        self._dirs.add(path)

    def _write_tmp(self, path: str, data: bytes | memoryview) -> str:
        """Write `data` to a new temporary file next to `path`, flushed to the server's disk."""
        parent = os.path.dirname(path)
        self._mkdirs(parent)
        tmp = f"{parent}/.tmp-{self._tmp_prefix}-{next(self._tmp_counter)}"
        try:
            with self.sftp.open(tmp, "wxb") as fh:
                fh.set_pipelined(True)  # writes go out without waiting for each reply
                fh.write(data)
                fh.flush()  # the pipelined writes' replies: an error (disk full) surfaces here
                self._server_fsync(fh)
        except BaseException:
            with contextlib.suppress(Exception):
                self.sftp.remove(tmp)
            raise
        return tmp

    def _server_fsync(self, fh: paramiko.SFTPFile) -> None:
        """fsync@openssh.com on the open file, if the server has it (paramiko has no call for it)."""
        if not self._fsync:
            return
        try:
            self.sftp._request(CMD_EXTENDED, "fsync@openssh.com", fh.handle)
        except OSError as exc:
            if exc.errno is not None:
                raise
            self._fsync = False  # SSH_FX_OP_UNSUPPORTED: the rename still keeps objects whole

    # ---- ObjectStore ----------------------------------------------------------------------------
    def _put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        with translate_ssh_errors(self._what("writing", key)):
            tmp = self._write_tmp(path, data)
            try:
                self.sftp.posix_rename(tmp, path)
            except BaseException:
                with contextlib.suppress(Exception):
                    self.sftp.remove(tmp)
                raise

    def _put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        with translate_ssh_errors(self._what("creating", key)):
            if self._stat_path(path, self._what("checking", key)) is not None:
                return False
            tmp = self._write_tmp(path, data)
            try:
                # SSH_FXP_RENAME: OpenSSH links the new name and fails if it exists (atomic).
                self.sftp.rename(tmp, path)
            except OSError:
                with contextlib.suppress(Exception):
                    self.sftp.remove(tmp)
                if self._stat_path(path, self._what("checking", key)) is not None:
                    return False
                raise
            return True

    def _get(self, key: str) -> bytes:
        with translate_ssh_errors(self._what("reading", key)), self.sftp.open(self._path(key), "rb") as fh:
            size = fh.stat().st_size or 0
            # Prefetch: many read requests in flight (never prefetch=False: ~6 MB/s).
            fh.prefetch(size, _READ_AHEAD)
            data = fh.read()
        if len(data) != size:
            raise RetryableError(f"{self._what('reading', key)}: short read ({len(data)} of {size} bytes)")
        return data

    def _get_range(self, key: str, offset: int, length: int) -> bytes:
        with translate_ssh_errors(self._what("reading", key)), self.sftp.open(self._path(key), "rb") as fh:
            size = fh.stat().st_size or 0
            length = max(0, min(length, size - offset))
            # readv: the range's 32 KiB requests go out at once (a plain read waits for each reply)
            return b"".join(fh.readv([(offset, length)])) if length else b""

    def _stat(self, key: str) -> ObjectInfo | None:
        st = self._stat_path(self._path(key), self._what("checking", key))
        if st is None or not statmod.S_ISREG(st.st_mode or 0):
            return None
        return ObjectInfo(key, st.st_size or 0, st.st_mtime)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        start = prefix.rpartition("/")[0] if "/" in prefix else ""
        with translate_ssh_errors(f"listing {prefix or '/'} in {self.display_url}"):
            yield from self._walk(start, prefix)

    def _walk(self, rel: str, prefix: str) -> Iterator[ObjectInfo]:
        try:
            entries = self.sftp.listdir_attr(self._path(rel) if rel else self.root)
        except FileNotFoundError:
            return
        for entry in entries:
            name = entry.filename
            if name.startswith(".tmp"):
                continue
            key = f"{rel}/{name}" if rel else name
            if statmod.S_ISDIR(entry.st_mode or 0):
                if key.startswith(prefix[: len(key)]):
                    yield from self._walk(key, prefix)
            elif statmod.S_ISREG(entry.st_mode or 0) and key.startswith(prefix):
                yield ObjectInfo(key, entry.st_size or 0, entry.st_mtime)

    def _delete(self, key: str) -> None:
        with contextlib.suppress(ObjectNotFound), translate_ssh_errors(self._what("deleting", key)):
            self.sftp.remove(self._path(key))

    def remove_temporaries(self, older_than: float = TEMPORARY_MAX_AGE) -> list[str]:
        """Remove `.tmp-*` files of crashed writes older than `older_than` seconds (server clock)."""
        removed: list[str] = []
        with translate_ssh_errors(f"removing temporary files in {self.display_url}"):
            newest = self._server_now() - older_than
            self._remove_tmp("", newest, removed)
        return removed

    def _server_now(self) -> float:
        """The server's clock, as the mtime of a file written now (its clock may differ from ours)."""
        probe = f"{self.root.rstrip('/')}/.tmp-{self._tmp_prefix}-clock"
        with self.sftp.open(probe, "wb"):
            pass
        try:
            return self.sftp.stat(probe).st_mtime or 0.0
        finally:
            self.sftp.remove(probe)

    def _remove_tmp(self, rel: str, newest: float, removed: list[str]) -> None:
        for entry in self.sftp.listdir_attr(self._path(rel) if rel else self.root):
            key = f"{rel}/{entry.filename}" if rel else entry.filename
            if statmod.S_ISDIR(entry.st_mode or 0):
                self._remove_tmp(key, newest, removed)
            elif entry.filename.startswith(".tmp-") and (entry.st_mtime or 0) < newest:
                with contextlib.suppress(FileNotFoundError):
                    self.sftp.remove(self._path(key))
                removed.append(key)

    # ---- lifecycle --------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._drop_connection()

    def __getstate__(self) -> dict[str, Any]:
        # Connections cannot cross process boundaries; the copy reconnects on first use.
        state = self.__dict__.copy()
        state.update(_client=None, _sessions=[], _lock=None, _local=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock, self._local = threading.Lock(), threading.local()


def parse_sftp_url(url: str) -> tuple[SshOptions, str]:
    """`sftp://user@host[:port]/path?identity=..&known_hosts=..` → (SSH options, vault folder)."""
    from seawall.stores import parse_query, redact_url

    parts = urlsplit(url)
    shown = redact_url(url)
    try:
        port = parts.port or 22
    except ValueError:
        raise ConfigError(f"invalid port in {shown!r}", hint="use sftp://user@host:port/path") from None
    if parts.scheme.lower() != "sftp" or not parts.hostname:
        raise ConfigError(f"invalid SFTP vault URL {shown!r}", hint="use sftp://user@host[:port]/path")
    if parts.password is not None:
        raise ConfigError(f"SFTP vault URL {shown!r} carries a password",
                          hint="authenticate with a key (?identity=KEY_FILE or the SSH agent)")
    if not parts.path.startswith("/") or not parts.path.strip("/"):
        raise ConfigError(f"SFTP vault URL {shown!r} has no folder", hint="use sftp://user@host[:port]/absolute/path")
    query = parse_query(url)
    unknown = sorted(set(query) - _URL_PARAMS)
    if unknown:
        raise ConfigError(f"unknown parameter(s) {', '.join(unknown)} in {shown!r}",
                          hint="SFTP vault URLs accept identity and known_hosts")
    for name in ("identity", "known_hosts"):
        if name in query and not os.path.isfile(os.path.expanduser(query[name])):
            raise ConfigError(f"{name} file {query[name]} of {shown!r} does not exist", hint=f"check ?{name}=")
    options = SshOptions(host=parts.hostname, port=port,
                         username=unquote(parts.username) if parts.username else None,
                         key_path=query.get("identity") or None, known_hosts_path=query.get("known_hosts") or None,
                         passphrase=os.environ.get(KEY_PASSPHRASE_ENV) or None)
    return options, unquote(parts.path)


def from_url(url: str, *, create: bool = False, **options: Any) -> SftpStore:
    """Open an SFTP vault URL; with `create=True` make its folder if missing.

    Args:
        url: `sftp://user@host[:port]/path[?identity=FILE&known_hosts=FILE]`.
        create: Create the folder (and parents) on the host.
        **options: `ssh_options` (a ready SshOptions for the host) or SshOptions fields overriding the URL's.
    """
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise ConfigError(f"unknown SFTP store option(s): {', '.join(unknown)}",
                          hint=f"use {', '.join(sorted(_OPTIONS))}")
    ssh, root = parse_sftp_url(url)
    ready = options.pop("ssh_options", None)
    if ready is not None:
        ssh = ready
    for name, value in options.items():
        if value is not None:
            setattr(ssh, name, value)
    return SftpStore(ssh, root, create=create)

