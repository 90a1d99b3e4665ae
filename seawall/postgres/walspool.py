"""The local spool shared by `seawall wal-push --async` / `wal-get --prefetch` and their daemons.

One directory per cluster and vault, under the spool root (`--spool`, `$SEAWALL_SPOOL`, default
`$TMPDIR/seawall-spool-<uid>`)::

    push-<key>/daemon.lock   flock held by the running push daemon (its pid inside)
    push-<key>/daemon.log    what the daemon did and why it failed (no secrets: redacted)
    push-<key>/ok/<name>     <name> is durable in the vault; holds the inode, size and mtime of the
                             file that was pushed, so a stale status never acknowledges another file
    push-<key>/error/<name>  the last attempt failed: `<exit code> <retryable 0|1> <one line>`
    push-<key>/global.error  the daemon could not start (vault unreachable, wrong passphrase)
    get-<key>/daemon.lock    the prefetch daemon's lock; get-<key>/want: the newest name asked for
    get-<key>/in/<name>      a prefetched segment, complete (written to a temp name, then renamed)

A status file is a cache of facts about the vault, never the only copy of anything: losing the
spool (a reboot, `rm -rf`) costs a re-push ("already archived") or a re-fetch, nothing more. This
module is on the per-segment path of archive_command: standard library only, and cheap to import
(no dataclasses, no hashlib, no subprocess until a daemon must be started).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys

# The acknowledgement fast path (before the CLI's own imports) is `seawall.postgres.walack`; this
# module is the rest of the spool, imported once a call has to wait for or start the daemon.
from seawall.postgres.walack import (  # noqa: F401 (re-exported)
    MIN_FREE,
    SPOOL_ENV,
    default_root,
    matches,
    read_ok,
    spool_key,
)

_HEX = frozenset("0123456789ABCDEF")


def is_segment(name: str) -> bool:
    return len(name) == 24 and _HEX.issuperset(name)


def _private_dir(path: str) -> None:
    """mkdir 0700; an existing one must be ours and closed to others (the default root is in /tmp)."""
    from seawall.errors import ConfigError

    try:
        os.mkdir(path, 0o700)
        return
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot create spool directory {path}: {exc.strerror}",
                          hint="pass --spool DIR on a local disk this user can write") from None
    st = os.lstat(path)
    if not os.path.isdir(path) or os.path.islink(path) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise ConfigError(f"spool directory {path} is not a private directory of this user",
                          hint="remove it, or pass --spool DIR")


class SpoolDir:
    """One cluster+vault's spool directory (`kind` is "push" or "get")."""

    def __init__(self, path: str):
        self.root = os.path.dirname(path)
        self.path = path
        self.lock_path = os.path.join(self.path, "daemon.lock")
        self.log_path = os.path.join(self.path, "daemon.log")
        self.global_error = os.path.join(self.path, "global.error")

    @classmethod
    def of(cls, root: str, kind: str, wal_dir: str, vault_url: str) -> SpoolDir:
        return cls(os.path.join(root, f"{kind}-{spool_key(wal_dir, vault_url)}"))

    def __repr__(self) -> str:
        return f"SpoolDir({self.path!r})"

    def sub(self, *parts: str) -> str:
        return os.path.join(self.path, *parts)

    def prepare(self, *subdirs: str) -> SpoolDir:
        for path in (self.root, self.path, *(self.sub(d) for d in subdirs)):
            _private_dir(path)
        return self

    def check_space(self) -> None:
        """A full spool disk is an error before anything is attempted (statvfs, no write needed)."""
        from seawall.errors import NoSpaceError

        st = os.statvfs(self.path)
        if st.f_bavail * st.f_frsize < MIN_FREE:
            raise NoSpaceError(f"spool {self.path} is full (less than {MIN_FREE >> 20} MiB free)",
                               hint="free space there or pass --spool DIR; PostgreSQL keeps the WAL and retries")

    # ---- push status files --------------------------------------------------------------------
    def write_ok(self, name: str, st: os.stat_result, outcome: str) -> None:
        write_atomic(self.sub("ok", name), f"{st.st_ino} {st.st_size} {st.st_mtime_ns} {outcome}\n")

    def ok_matches(self, name: str, st: os.stat_result) -> bool:
        """True if `name` was pushed and the file now at %p is the very file that was pushed."""
        return matches(read_ok(self.sub("ok", name)), st)

    def outcome(self, name: str) -> str:
        """What the daemon's push of `name` found ("archived", "already archived", ...)."""
        try:
            with open(self.sub("ok", name)) as fh:
                return fh.read().rstrip("\n").split(" ", 3)[3]
        except (OSError, IndexError):
            return "archived"

    def write_error(self, name: str, exit_code: int, retryable: bool, message: str) -> None:
        line = " ".join(message.split())  # one line, whatever the exception carried
        write_atomic(self.sub("error", name), f"{exit_code} {int(retryable)} {line}\n")

    def read_error(self, name: str | None) -> tuple[int, bool, str] | None:
        """(exit code, retryable, message) of `name`'s last failure (None: the daemon's own)."""
        try:
            with open(self.sub("error", name) if name else self.global_error) as fh:
                code, retryable, message = fh.read().rstrip("\n").split(" ", 2)
            return int(code), retryable == "1", message
        except (OSError, ValueError):
            return None

    def remove(self, *parts: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.sub(*parts))

    # ---- the daemon lock ----------------------------------------------------------------------
    def daemon_running(self) -> bool:
        """A daemon holds the lock (flock dies with its process: a kill -9 leaves no stale lock)."""
        fd = self.try_lock()
        if fd is None:
            return True
        os.close(fd)
        return False

    def try_lock(self) -> int | None:
        """The lock's descriptor if we got it, None if a live daemon holds it."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def daemon_pid(self) -> int | None:
        if not self.daemon_running():
            return None
        try:
            with open(self.lock_path) as fh:
                return int(fh.read().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def spawn(self, argv: list[str], cwd: str):  # -> subprocess.Popen (not imported at module level)
        """Start a daemon detached from the caller (own session; no inherited pipes: PostgreSQL waits
        for archive_command's stdout/stderr to close)."""
        import subprocess

        with open(self.log_path, "ab") as log:
            return subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             start_new_session=True, close_fds=True)


def write_atomic(path: str, text: str) -> None:
    """Temp file + rename: a reader sees the whole status or none. No fsync: a status lost in a crash
    only costs a re-push (the vault object itself is durable before any ok is written)."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            from seawall.errors import NoSpaceError

            raise NoSpaceError(f"spool {os.path.dirname(path)} is full: cannot record {os.path.basename(path)}",
                               hint="free space there; PostgreSQL keeps the WAL and retries") from None
        raise


def python_argv(*args: str) -> list[str]:
    """Argv that runs `seawall.cli.wal` with this interpreter (the daemons' entry point)."""
    return [sys.executable, "-m", "seawall.cli.wal", *args]


def list_daemons(root: str) -> list[dict]:
    """Every push/get spool under `root`, with the pid of its running daemon (None if none runs)."""
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    out = []
    for name in names:
        kind = name.split("-", 1)[0]
        if kind in ("push", "get") and os.path.isdir(os.path.join(root, name)):
            spool = SpoolDir(os.path.join(root, name))
            pid = spool.daemon_pid() if os.path.exists(spool.lock_path) else None
            out.append({"kind": kind, "spool": spool.path, "pid": pid})
    return out


def stop_daemon(pid: int, spool_path: str, wait: float = 30.0) -> bool:
    """SIGTERM the daemon of `spool_path` and wait until its lock is free (it finishes started puts)."""
    import signal
    import time

    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    spool = SpoolDir(spool_path)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not spool.daemon_running():
            return True
        time.sleep(0.05)
    return False
